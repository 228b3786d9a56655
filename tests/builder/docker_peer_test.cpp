// The differential-test fixture itself: docker builds from the shared busybox base, and the
// saved image flattens (through cbuild's own applier) into the tree docker produced.
#include "tests/support/docker_peer.h"

#include <doctest/doctest.h>

#include <fstream>

#include "oci/base/fs.h"
#include "tests/support/image_tree.h"

namespace fs = std::filesystem;
using namespace cbuild;

TEST_CASE("docker peer: a build from the busybox base flattens to the expected tree") {
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  TempDir work;
  fs::create_directories(work.path() / "ctx");
  std::ofstream(work.path() / "ctx/Dockerfile") << "FROM " << docker->base() << "\n"
                                                << "RUN echo hi > /x && rm /etc/group && mkdir -p /d/e\n";
  auto b = docker->build(work.path() / "ctx", work.path() / "ctx/Dockerfile", work.path() / "out");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  CHECK(read_file(b.rootfs / "x") == "hi\n");
  CHECK(fs::exists(b.rootfs / "bin/busybox"));
  CHECK(fs::is_symlink(b.rootfs / "bin/sh"));
  CHECK_FALSE(fs::exists(b.rootfs / "etc/group"));  // the whiteout was applied
  CHECK(fs::is_directory(b.rootfs / "d/e"));
  std::string listing = test::tree_listing(b.rootfs);
  CHECK(listing.find("x file 0644 0:0 3 ") != std::string::npos);
  CHECK(b.config["history"].size() == 2);
}
