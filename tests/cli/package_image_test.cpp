// The cbuild image (packaging/Dockerfile, assembled by scripts/package.sh) built by cbuild
// itself, then run by docker as its non-root user: it builds an image with several owners (which
// needs newuidmap/newgidmap and the image's /etc/subuid ranges) and gets the digest root's
// build on the host gets, RUN included.
#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace

TEST_CASE("package image: cbuild's own image builds an image as uid 1000 under docker") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  TempDir dir;
  fs::permissions(dir.path(), fs::perms(0755));
  fs::path tar = dir.path() / "cbuild-image.tar";
  const std::string tag = "cbuild-test-package:dev";

  auto pkg = test::run_command({std::string(CBUILD_SOURCE_DIR) + "/scripts/package.sh", "-t", tag, "-B",
                                fs::path(CBUILD_BINARY).parent_path().string(), "-C", (dir.path() / "pkg").string(),
                                "--", "--root", (dir.path() / "store").string(), "--progress=plain", "-o",
                                "type=docker,dest=" + tar.string()});
  INFO("package.sh: " << pkg.err);
  REQUIRE(pkg.exit_code == 0);

  auto load = docker->docker({"load", "-i", tar.string()});
  INFO("docker load: " << load.out << load.err);
  REQUIRE(load.exit_code == 0);

  auto inspect = docker->docker({"image", "inspect", "-f", "{{.Config.User}}", tag});
  CHECK(last_line(inspect.out) == "1000:1000");

  // The build inside: several owners, so a one-id mapping (no newuidmap) would fail the chowns.
  fs::path ctx = dir.path() / "ctx";
  fs::create_directories(ctx);
  write_file_atomic(ctx / "Dockerfile",
                    "FROM scratch\nCOPY --chown=1234:5678 hello.txt /hello.txt\nCOPY busybox /bin/busybox\n"
                    "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir /made && /bin/busybox chown 42:43 /made\"]\n");
  fs::copy_file("/bin/busybox", ctx / "busybox");
  write_file_atomic(ctx / "hello.txt", "hello\n");
  for (const auto& e : fs::recursive_directory_iterator(ctx))
    fs::permissions(e.path(), e.is_directory() || e.path().filename() == "busybox" ? fs::perms(0755) : fs::perms(0644));
  fs::permissions(ctx, fs::perms(0755));

  auto host = test::run_cbuild({"--root", (dir.path() / "host-store").string(), "-q", "-t", "app:1", ctx.string()}, {},
                               {"SOURCE_DATE_EPOCH=1700000000"});
  INFO("host build: " << host.err);
  REQUIRE(host.exit_code == 0);

  // The settings docs/ci.md gives for the userns level under docker (systempaths: RUN mounts a
  // /proc, which the kernel refuses over docker's masked one); the store on a tmpfs, as an
  // emptyDir would be in a pod (overlayfs takes no upper dir on the container's overlay).
  auto run = docker->docker({"run", "--rm", "--security-opt", "seccomp=unconfined", "--security-opt",
                             "apparmor=unconfined", "--security-opt", "systempaths=unconfined", "--tmpfs",
                             "/home/cbuild/.local/share/cbuild:uid=1000,gid=1000", "-e", "SOURCE_DATE_EPOCH=1700000000",
                             "-v", ctx.string() + ":/src:ro", tag, "build", "-q", "-t", "app:1", "/src"});
  INFO("docker run: " << run.out << run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.err.find("single id") == std::string::npos);  // no one-id mapping notice
  CHECK(last_line(run.out) == last_line(host.out));

  // Commands that touch no store run under docker's default profile too.
  auto version = docker->docker({"run", "--rm", tag, "version"});
  INFO("docker run version: " << version.out << version.err);
  CHECK(version.exit_code == 0);
  CHECK(version.out.find("cbuild version") != std::string::npos);

  docker->docker({"rmi", tag});
}
