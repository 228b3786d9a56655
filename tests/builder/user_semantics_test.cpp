// USER through the real binary, compared with docker build: the ids and HOME a RUN process gets
// for each form of USER (an explicit group replaces passwd's gid and drops the supplementary
// groups), and the owner WORKDIR gives the directories it makes (BuildKit's file-op rule: a
// numeric user without a group is also the group, whatever passwd says).
#include <doctest/doctest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

// The base has app 1000:1000, a member of extra (1500). Added here: audio (63) listing app, and
// u2, whose passwd gid (2100) differs from its uid.
const char* kUsers =
    "RUN echo 'audio:x:63:app' >> /etc/group && echo 'g2:x:2100:' >> /etc/group && "
    "echo 'u2:x:2000:2100::/home/u2:/bin/sh' >> /etc/passwd\n";

// Each USER form and the ids docker's RUN process gets for it (uid gid groups).
struct Form {
  const char* user;
  const char* ids;
};
const Form kForms[] = {
    {"app:audio", "1000 63 "},    {"1000:63", "1000 63 "},     {"app:63", "1000 63 "},
    {"app:extra", "1000 1500 "},  {"1000", "1000 1000 63 1500"}, {"app", "1000 1000 63 1500"},
    {"1001", "1001 0 "},          {"1001:1002", "1001 1002 "}, {"u2", "2000 2100 "},
};

}  // namespace

TEST_CASE("USER name:group gives the RUN process exactly that gid and no supplementary groups, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  std::string df = "FROM " + p.base + "\n" + kUsers;
  int i = 0;
  for (const Form& f : kForms) {
    // /proc/self/status: the kernel's own view (busybox id would print the primary gid again).
    df += "USER " + std::string(f.user) + "\n";
    df += "RUN set -- $(grep -E '^(Uid|Gid|Groups):' /proc/self/status) && "
          "echo \"$2 $7 $(echo ${12} ${13} ${14})\" > /tmp/ids" + std::to_string(i) +
          " && echo \"$HOME\" > /tmp/home" + std::to_string(i) + "\n";
    ++i;
  }
  p.file("Dockerfile", df);
  auto r = p.build({"-t", "users:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/users:1", work.path() / "mine/rootfs");
  i = 0;
  for (const Form& f : kForms) {
    std::string user = f.user;
    CAPTURE(user);
    CHECK(read_file(mine / ("tmp/ids" + std::to_string(i++))) == std::string(f.ids) + "\n");
  }

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  i = 0;
  for (const Form& f : kForms) {
    std::string user = f.user;
    CAPTURE(user);
    for (std::string name : {"tmp/ids", "tmp/home"}) {
      name += std::to_string(i);
      CHECK(read_file(b.rootfs / name) == read_file(mine / name));
    }
    ++i;
  }
}

TEST_CASE("WORKDIR makes its directories owned as docker does for each form of USER") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM " + p.base + "\n" + kUsers +
         "USER 1001\nWORKDIR /data/x\n"
         "USER 2000\nWORKDIR /w-uid-with-entry/a\n"
         "USER u2\nWORKDIR /w-name/a\n"
         "USER app:extra\nWORKDIR /w-name-group/a\n"
         "USER 1001:1002\nWORKDIR /w-ids/a\n"
         "USER app:63\nWORKDIR /w-name-gid/a\n"
         "USER 1001:audio\nWORKDIR /w-uid-group/a\n"
         "USER root\nWORKDIR /w-root/a\n"
         "WORKDIR /data/x\n");  // already there: left as it is
  auto r = p.build({"-t", "wdown:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/wdown:1", work.path() / "mine/rootfs");
  std::string listing = test::tree_listing(mine);
  CHECK(listing.find("data dir 0755 1001:1001 ") != std::string::npos);
  CHECK(listing.find("data/x dir 0755 1001:1001 ") != std::string::npos);
  CHECK(listing.find("w-uid-with-entry/a dir 0755 2000:2000 ") != std::string::npos);
  CHECK(listing.find("w-name/a dir 0755 2000:2100 ") != std::string::npos);
  CHECK(listing.find("w-ids/a dir 0755 1001:1002 ") != std::string::npos);

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), listing);
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
}
