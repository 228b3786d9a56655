// WORKDIR through a symlink, through the real binary and compared with docker build: the link
// is followed inside the rootfs (dangling or not) and what is missing is made where it leads;
// a link that climbs (/../../../tmp) or is absolute still resolves inside the rootfs.
#include <doctest/doctest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

TEST_CASE("WORKDIR through a dangling symlink makes the directory where the link leads, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "RUN ln -s /somewhere /wd && ln -s ../rel/x /wd2 && mkdir /rel\n"
         "WORKDIR /wd/sub\n"
         "RUN pwd > /pwd1 && touch in1\n"
         "WORKDIR /wd2/y\n"
         "RUN pwd > /pwd2 && touch in2\n");
  auto r = p.build({"-t", "wd:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/wd:1", work.path() / "mine/rootfs");
  CHECK(fs::is_symlink(mine / "wd"));
  CHECK(fs::is_directory(mine / "somewhere/sub"));
  CHECK(fs::exists(mine / "somewhere/sub/in1"));
  CHECK(fs::exists(mine / "rel/x/y/in2"));
  CHECK(config["config"]["WorkingDir"] == "/wd2/y");

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  CHECK(b.config["config"].value("WorkingDir", "") == config["config"].value("WorkingDir", ""));
  auto hd = test::history_created_by(b.config), hm = test::history_created_by(config);
  CHECK_MESSAGE(hd == hm, "docker: " << json(hd).dump(1) << "\ncbuild: " << json(hm).dump(1));
}

TEST_CASE("WORKDIR through a link to /../../../tmp or / stays inside the rootfs") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  // A name no host directory has: if the walk escaped, it would be made in the host's /tmp.
  std::string mark = "cbuild-wd-escape-" + std::to_string(::getpid());
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "RUN ln -s /../../../tmp /up && ln -s / /top && ln -s ../../../../.. /rel\n"
         "WORKDIR /up/" + mark + "/a\n"
         "RUN touch f1\n"
         "WORKDIR /top/../../" + mark + "-b\n"
         "WORKDIR /rel/" + mark + "-c\n"
         "RUN touch f3\n");
  auto r = p.build({"-t", "wdup:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK_FALSE(fs::exists(fs::path("/tmp") / mark));
  CHECK_FALSE(fs::exists(fs::path("/") / (mark + "-b")));
  CHECK_FALSE(fs::exists(fs::path("/") / (mark + "-c")));
  CHECK_FALSE(fs::exists(p.tmp / mark));
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/wdup:1", work.path() / "mine/rootfs");
  CHECK(fs::exists(mine / "tmp" / mark / "a/f1"));
  CHECK(fs::is_directory(mine / (mark + "-b")));
  CHECK(fs::exists(mine / (mark + "-c") / "f3"));
  CHECK(config["config"]["WorkingDir"] == "/rel/" + mark + "-c");
}
