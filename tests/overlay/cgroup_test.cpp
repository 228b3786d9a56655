#include "overlay/cgroup.h"

#include <doctest/doctest.h>

using namespace cbuild::overlay;

TEST_CASE("cgroup: layouts parsed from mountinfo (v2, v1, hybrid)") {
  const char* hybrid =
      "30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
      "33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
      "34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
      "35 30 0:31 / /sys/fs/cgroup/pids rw shared:9 - cgroup cgroup rw,pids\n";
  auto l = parse_cgroup_mounts(hybrid);
  CHECK(l.unified == "/sys/fs/cgroup/unified");
  REQUIRE(l.v1.size() == 3);
  CHECK(l.v1[0] == std::make_pair(std::string("memory"), std::filesystem::path("/sys/fs/cgroup/memory")));
  CHECK(l.v1[1].second == "/sys/fs/cgroup/cpu,cpuacct");
  CHECK(l.v1[2].first == "pids");
  auto v2 = parse_cgroup_mounts("29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n");
  CHECK(v2.unified == "/sys/fs/cgroup");
  CHECK(v2.v1.empty());
  CHECK(parse_cgroup_mounts("garbage\n\n1 2 3\n").v1.empty());
}

TEST_CASE("cgroup: limit files for v2 and v1") {
  ResourceLimits lim;
  lim.memory_bytes = 1 << 20;
  lim.cpus = 1.5;
  lim.pids = 100;
  auto v2 = v2_limit_files(lim);
  CHECK(v2 == std::vector<std::pair<std::string, std::string>>{{"memory.max", "1048576"},
                                                                {"memory.swap.max", "1048576"},
                                                                {"cpu.max", "150000 100000"},
                                                                {"pids.max", "100"}});
  CHECK(v1_limit_files("memory", lim) ==
        std::vector<std::pair<std::string, std::string>>{{"memory.limit_in_bytes", "1048576"},
                                                         {"memory.memsw.limit_in_bytes", "2097152"}});
  CHECK(v1_limit_files("cpu", lim) == std::vector<std::pair<std::string, std::string>>{
                                          {"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", "150000"}});
  CHECK(v1_limit_files("pids", ResourceLimits{}).empty());
  ResourceLimits tiny;
  tiny.cpus = 0.001;  // never below the kernel's 1 ms minimum quota
  CHECK(v2_limit_files(tiny)[0].second == "1000 100000");
  CHECK(ResourceLimits{}.empty());
  CHECK_THROWS(Cgroup(ResourceLimits{.cpus = -1.0}));
}
