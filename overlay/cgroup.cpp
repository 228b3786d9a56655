#include "overlay/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/user_namespace.h"

namespace cbuild::overlay {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> split_commas(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= s.size()) {
    std::size_t j = s.find(',', i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

void write_cgroup_file(const fs::path& p, const std::string& value) {
  UniqueFd fd = open_file(p, O_WRONLY);
  write_all(fd.get(), value.data(), value.size(), p.string());
}

// A name unique on this host for this process's lifetime.
std::string unique_name() {
  static std::atomic<unsigned> counter{0};
  return "run-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

fs::path make_dir(const fs::path& hierarchy) {
  fs::path base = hierarchy / "cbuild";
  if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("cgroup: mkdir", base.string());
  fs::path dir = base / unique_name();
  if (::mkdir(dir.c_str(), 0755) != 0) throw_errno("cgroup: mkdir", dir.string());
  return dir;
}

void enable_v2_controllers(const fs::path& unified, const std::vector<std::string>& wanted) {
  std::string ctl;
  for (const auto& c : wanted) ctl += (ctl.empty() ? "+" : " +") + c;
  if (ctl.empty()) return;
  // The root and our "cbuild" parent must both delegate the controllers to their children.
  write_cgroup_file(unified / "cgroup.subtree_control", ctl);
  fs::path base = unified / "cbuild";
  if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("cgroup: mkdir", base.string());
  write_cgroup_file(base / "cgroup.subtree_control", ctl);
}

std::vector<pid_t> read_procs(const fs::path& dir) {
  std::vector<pid_t> out;
  auto text = read_file_if_exists(dir / "cgroup.procs", 1 << 20);
  if (!text) return out;
  std::istringstream in(*text);
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

}  // namespace

CgroupLayout parse_cgroup_mounts(std::string_view mountinfo) {
  CgroupLayout out;
  std::istringstream in{std::string(mountinfo)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> f;
    std::string w;
    while (ls >> w) f.push_back(w);
    std::size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash < 5 || dash + 3 > f.size()) continue;
    const std::string& mnt = f[4];
    const std::string& type = f[dash + 1];
    if (type == "cgroup2") {
      if (out.unified.empty()) out.unified = mnt;
    } else if (type == "cgroup") {
      for (const auto& opt : split_commas(f[dash + 3])) {
        if (opt == "memory" || opt == "cpu" || opt == "pids") {
          bool seen = false;
          for (const auto& [c, p] : out.v1) seen |= c == opt;
          if (!seen) out.v1.emplace_back(opt, mnt);
        }
      }
    }
  }
  return out;
}

CgroupLayout detect_cgroup_layout() {
  CgroupLayout l = parse_cgroup_mounts(read_file("/proc/self/mountinfo", 4u << 20));
  if (!l.unified.empty()) {
    if (auto c = read_file_if_exists(l.unified / "cgroup.controllers", 4096)) {
      std::istringstream in(*c);
      std::string name;
      while (in >> name) l.unified_controllers.push_back(name);
    }
  }
  return l;
}

std::vector<std::pair<std::string, std::string>> v2_limit_files(const ResourceLimits& limits) {
  std::vector<std::pair<std::string, std::string>> out;
  if (limits.memory_bytes) {
    out.emplace_back("memory.max", std::to_string(*limits.memory_bytes));
    // docker: --memory without --memory-swap allows as much swap again as memory.
    out.emplace_back("memory.swap.max", std::to_string(*limits.memory_bytes));
  }
  if (limits.cpus) {
    auto quota = static_cast<long long>(std::llround(*limits.cpus * 100000.0));
    out.emplace_back("cpu.max", std::to_string(std::max(quota, 1000LL)) + " 100000");
  }
  if (limits.pids) out.emplace_back("pids.max", std::to_string(*limits.pids));
  return out;
}

std::vector<std::pair<std::string, std::string>> v1_limit_files(const std::string& controller,
                                                                const ResourceLimits& limits) {
  std::vector<std::pair<std::string, std::string>> out;
  if (controller == "memory" && limits.memory_bytes) {
    out.emplace_back("memory.limit_in_bytes", std::to_string(*limits.memory_bytes));
    // memory + swap, as docker sets it; written only where swap accounting exists.
    out.emplace_back("memory.memsw.limit_in_bytes", std::to_string(2 * *limits.memory_bytes));
  }
  if (controller == "cpu" && limits.cpus) {
    auto quota = static_cast<long long>(std::llround(*limits.cpus * 100000.0));
    out.emplace_back("cpu.cfs_period_us", "100000");
    out.emplace_back("cpu.cfs_quota_us", std::to_string(std::max(quota, 1000LL)));
  }
  if (controller == "pids" && limits.pids) out.emplace_back("pids.max", std::to_string(*limits.pids));
  return out;
}

Cgroup::Cgroup(const ResourceLimits& limits) {
  if (limits.empty()) return;
  if (limits.cpus && !(*limits.cpus > 0))
    throw Error(ErrorKind::InvalidArgument, "cgroup: --cpus must be greater than 0");
  CgroupLayout l = detect_cgroup_layout();
  std::vector<std::string> wanted;
  if (limits.memory_bytes) wanted.push_back("memory");
  if (limits.cpus) wanted.push_back("cpu");
  if (limits.pids) wanted.push_back("pids");
  try {
    std::vector<std::string> v2, v1;
    for (const auto& c : wanted) {
      bool in_v2 = false;
      for (const auto& u : l.unified_controllers) in_v2 |= u == c;
      if (in_v2) {
        v2.push_back(c);
        continue;
      }
      bool in_v1 = false;
      for (const auto& [name, p] : l.v1) in_v1 |= name == c;
      if (!in_v1)
        throw Error(ErrorKind::FailedPrecondition, "cgroup: the " + c + " controller is not available on this host");
      v1.push_back(c);
    }
    if (!v2.empty()) {
      enable_v2_controllers(l.unified, v2);
      dirs_.push_back(make_dir(l.unified));
      ResourceLimits only;
      for (const auto& c : v2) {
        if (c == "memory") only.memory_bytes = limits.memory_bytes;
        if (c == "cpu") only.cpus = limits.cpus;
        if (c == "pids") only.pids = limits.pids;
      }
      for (const auto& [file, value] : v2_limit_files(only)) {
        fs::path p = dirs_.back() / file;
        if (file == "memory.swap.max" && !fs::exists(p)) continue;  // no swap accounting
        write_cgroup_file(p, value);
      }
    }
    for (const auto& c : v1) {
      fs::path mount;
      for (const auto& [name, p] : l.v1)
        if (name == c) mount = p;
      // cpu may be co-mounted with cpuacct: one directory serves both.
      fs::path dir;
      for (const auto& d : dirs_)
        if (d.parent_path().parent_path() == mount) dir = d;
      if (dir.empty()) {
        dir = make_dir(mount);
        dirs_.push_back(dir);
      }
      for (const auto& [file, value] : v1_limit_files(c, limits)) {
        if (file == "memory.memsw.limit_in_bytes" && !fs::exists(dir / file)) continue;
        write_cgroup_file(dir / file, value);
      }
    }
  } catch (const Error& e) {
    for (const auto& d : dirs_) ::rmdir(d.c_str());
    dirs_.clear();
    // Rootless: without a cgroup subtree delegated to this user the limits cannot be set.
    // The run goes on, as with rootless podman, and says which limits it did without.
    int err = e.sys_errno();
    if (in_initial_user_namespace() || (err != EACCES && err != EPERM && err != EROFS)) throw;
    std::vector<std::string> which;
    if (limits.memory_bytes) which.push_back("--memory");
    if (limits.cpus) which.push_back("--cpus");
    if (limits.pids) which.push_back("--pids-limit");
    std::string list;
    for (const auto& w : which) list += (list.empty() ? "" : ", ") + w;
    std::fprintf(stderr,
                 "cbuild: warning: rootless mode: %s %s not applied: no cgroup this user may write (%s)\n",
                 which.size() > 1 ? "limits" : "limit", list.c_str(), e.what());
  } catch (...) {
    for (const auto& d : dirs_) ::rmdir(d.c_str());
    dirs_.clear();
    throw;
  }
}

void Cgroup::add(pid_t pid) {
  for (const auto& d : dirs_) write_cgroup_file(d / "cgroup.procs", std::to_string(pid));
}

void Cgroup::kill_all() noexcept {
  for (const auto& d : dirs_) {
    try {
      fs::path k = d / "cgroup.kill";
      if (fs::exists(k)) {
        write_cgroup_file(k, "1");
        continue;
      }
      for (pid_t p : read_procs(d)) ::kill(p, SIGKILL);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cbuild: warning: cgroup kill %s: %s\n", d.c_str(), e.what());
    }
  }
}

Cgroup::~Cgroup() {
  if (dirs_.empty()) return;
  for (const auto& d : dirs_) {
    // A cgroup can be removed only once its last process is gone; dying takes a moment.
    bool removed = false;
    for (int attempt = 0; attempt < 200 && !removed; ++attempt) {
      if (::rmdir(d.c_str()) == 0 || errno == ENOENT) {
        removed = true;
        break;
      }
      if (errno != EBUSY) break;
      kill_all();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!removed) std::fprintf(stderr, "cbuild: warning: cannot remove cgroup %s: %s\n", d.c_str(), std::strerror(errno));
  }
}

}  // namespace cbuild::overlay
