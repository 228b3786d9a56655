// ADD --chown of a local archive, compared with docker build: the directories ADD creates on
// the way to the destination (the destination included) get the --chown owner, as COPY's do,
// while the archive's own entries keep the owners the archive records. Archives a wildcard
// matches are extracted too, and one .dockerignore leaves out is missing.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "oci/base/fs.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

std::string owner_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
}

}  // namespace

TEST_CASE("ADD --chown of an archive owns the directories it creates, not the archive's entries, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  TempDir src;
  fs::create_directories(src.path() / "top/inner");
  write_file_atomic(src.path() / "top/f", "f\n");
  write_file_atomic(src.path() / "g", "g\n");
  std::string tree = src.path().string();
  auto made = test::run_command(
      {"/bin/sh", "-c",
       "cd " + tree + " && chown 42:43 top top/f && chown 7:8 g top/inner && chmod 0750 top && chmod 0640 top/f && "
       "tar --numeric-owner -czf " + (p.ctx / "a.tar.gz").string() + " top g"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "ADD --chown=1234:5678 a.tar.gz /opt/new/dir/\n"
         "ADD --chown=1234 a.tar.gz /tmp/new/dir\n"
         "ADD a.tar.gz /plain/sub/\n");
  auto r = p.build({"-t", "addchown:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/addchown:1", work.path() / "mine/rootfs");
  CHECK(owner_of(mine / "opt") == "1234:5678");
  CHECK(owner_of(mine / "opt/new") == "1234:5678");
  CHECK(owner_of(mine / "opt/new/dir") == "1234:5678");
  CHECK(owner_of(mine / "opt/new/dir/top") == "42:43");
  CHECK(owner_of(mine / "opt/new/dir/top/f") == "42:43");
  CHECK(owner_of(mine / "opt/new/dir/g") == "7:8");
  CHECK(owner_of(mine / "tmp") == "0:0");  // there already: left as it was
  CHECK(owner_of(mine / "tmp/new") == "1234:1234");
  CHECK(owner_of(mine / "plain/sub") == "0:0");

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  for (const char* dir : {"opt", "tmp", "plain"}) {
    CAPTURE(dir);
    std::string diff = test::listing_diff(test::tree_listing(b.rootfs / dir), test::tree_listing(mine / dir));
    CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  }
  CHECK(owner_of(b.rootfs / "opt") == owner_of(mine / "opt"));
  CHECK(owner_of(b.rootfs / "tmp") == owner_of(mine / "tmp"));
}

TEST_CASE("ADD of an archive .dockerignore leaves out is an error, as for any other file") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  auto made =
      test::run_command({"/bin/sh", "-c", "cd " + p.ctx.string() + " && echo x > f && tar -cf a.tar f && rm f"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  p.file(".dockerignore", "*.tar\n");
  p.file("Dockerfile", "FROM " + p.base + "\nADD a.tar /x/\n");
  auto r = p.build({"-t", "addignored:1"});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find("a.tar") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find(".dockerignore") != std::string::npos, r.err);
}

TEST_CASE("ADD of archives named by a wildcard extracts each of them, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  auto made = test::run_command({"/bin/sh", "-c",
                                 "cd " + p.ctx.string() + " && mkdir -p t && echo one > t/one && echo two > t/two && "
                                 "tar -czf one.tar.gz -C t one && tar -cf two.tar -C t two && rm -r t && echo n > note.txt"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  p.file("Dockerfile", "FROM " + p.base + "\nADD --chown=1234:5678 *.tar* note.txt /w/new/\n");
  auto r = p.build({"-t", "addwild:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/addwild:1", work.path() / "mine/rootfs");
  CHECK(read_file(mine / "w/new/one") == "one\n");
  CHECK(read_file(mine / "w/new/two") == "two\n");
  CHECK_FALSE(fs::exists(mine / "w/new/one.tar.gz"));
  CHECK(owner_of(mine / "w/new/note.txt") == "1234:5678");

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs / "w"), test::tree_listing(mine / "w"));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
}
