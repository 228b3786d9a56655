// --isolation=chroot (overlay/isolation.h): builds without mounts or namespaces give the same
// image as the default (overlay snapshots, namespace sandbox) — the same image ID — for COPY,
// RUN changing, chowning, deleting and replacing files and directories, symlinks, hardlinks
// and setuid files; with docker's default capabilities (no CAP_SYS_ADMIN) too.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <functional>
#include <map>
#include <sstream>

#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"
#include "tests/support/test_caps.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

const char* kBase = "cbuild-test-busybox:1";
const std::vector<std::string> kEpoch = {"SOURCE_DATE_EPOCH=1700000000"};

// The last line of stdout: the image ID.
std::string image_id(const test::CommandResult& r) {
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
}

// "tar -tv" of every layer of `name` in project `p`, for a failure message.
std::string layer_listing(const test::BuildProject& p, const std::string& name) {
  auto store = oci::LayoutStore::open(p.root);
  auto desc = store->resolve("docker.io/library/" + name);
  if (!desc) return "(no image " + name + ")";
  auto m = oci::Manifest::parse(store->read_blob(desc->digest));
  std::ostringstream out;
  int i = 0;
  for (const auto& l : m.layers) {
    fs::path blob = p.root / "blobs" / "sha256" / l.digest.hex();
    auto r = test::run_command({"tar", "--numeric-owner", "--full-time", "-tvzf", blob.string()});
    out << "--- layer " << i++ << " " << l.digest.str() << "\n" << r.out;
  }
  return out.str();
}

// Runs cbuild with `args` (store, context, flags) for project `b`: directly, or through a
// wrapper such as setpriv or docker run.
using Runner = std::function<test::CommandResult(const test::BuildProject& b, const std::vector<std::string>& args)>;

test::CommandResult run_directly(const test::BuildProject& b, const std::vector<std::string>& args) {
  std::vector<std::string> env = kEpoch;
  env.push_back("TMPDIR=" + b.tmp.string());
  return test::run_cbuild(args, {}, env);
}

// Builds the same context in two fresh stores, the default way and through `runner` with
// `isolation`, and checks that both give one image ID; the second build must say that it
// uses chroot isolation, and why (`why`).
void check_same_image(const std::string& dockerfile, const std::map<std::string, std::string>& files = {},
                      const Runner& runner = run_directly, const std::string& isolation = "--isolation=chroot",
                      const std::string& why = "cbuild: isolation chroot: asked for with --isolation=chroot") {
  test::BuildProject a(kBase), b(kBase);
  for (auto* p : {&a, &b}) {
    p->file("Dockerfile", dockerfile);
    for (const auto& [name, text] : files) p->file(name, text);
  }
  auto ra = a.build({"-t", "img:1"}, kEpoch);
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  auto rb = runner(b, {"--root", b.root.string(), "--progress=plain", isolation, "-t", "img:1", b.ctx.string()});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(rb.err.find(why) != std::string::npos, rb.err);
  CHECK_MESSAGE(image_id(ra) == image_id(rb), "default build layers:\n"
                                                  << layer_listing(a, "img:1") << "\nchroot build layers:\n"
                                                  << layer_listing(b, "img:1"));
  // Nothing of the chroot build's rootfs directories is left behind.
  std::error_code ec;
  for (auto it = fs::directory_iterator(b.root / "snapshots" / ".tmp", ec); !ec && it != fs::directory_iterator(); ++it)
    CHECK_MESSAGE(it->path().filename().string().rfind("flat-", 0) != 0, it->path());
}

const char* kFilesDockerfile = R"(FROM cbuild-test-busybox:1
COPY a.txt /app/a.txt
COPY dir/ /app/dir/
RUN mkdir -p /data/sub && echo hi > /data/sub/f && chmod 0640 /data/sub/f && chown 1000:1500 /data/sub/f
RUN ln -s /data/sub/f /data/link && ln /data/sub/f /data/hard && echo s > /data/suid && chmod 4755 /data/suid
RUN rm -rf /app/dir && mkdir /app/dir && echo new > /app/dir/n
RUN rm /app/a.txt && chmod 0600 /etc/group && echo extra >> /etc/passwd && mkfifo /data/fifo
RUN rm -rf /var && mkdir /var && touch /var/v && rm /bin/true && mkdir /bin/true
USER 1000:1000
RUN echo mine > /tmp/mine
USER root
WORKDIR /w/x
RUN echo x > y && cat /etc/hosts /etc/resolv.conf /etc/hostname > /dev/null && cp /dev/null /w/empty
RUN <<EOF
#!/bin/sh -e
echo "script $0" > /w/script.out
EOF
)";

const std::map<std::string, std::string> kFiles = {
    {"a.txt", "a\n"}, {"dir/one", "1\n"}, {"dir/two/three", "3\n"}};

}  // namespace

TEST_CASE("isolation chroot: same image as the default for COPY, RUN, deletes, opaque dirs, links, setuid") {
  REQUIRE_ROOT();
  check_same_image(kFilesDockerfile, kFiles);
}

TEST_CASE("isolation chroot: a multi-stage build with COPY --from gives the default's image") {
  REQUIRE_ROOT();
  check_same_image(R"(FROM cbuild-test-busybox:1 AS build
RUN mkdir /out && echo built > /out/app && chmod 0755 /out/app
FROM cbuild-test-busybox:1
COPY --from=build /out/app /usr/bin/app
RUN /bin/sh -c 'test -x /usr/bin/app && echo ok > /ok'
)");
}

TEST_CASE("isolation chroot: ADD of a local archive, chown of a base dir, a removed tree give the default's image") {
  REQUIRE_ROOT();
  TempDir src;
  fs::create_directories(src.path() / "t" / "sub");
  std::ofstream(src.path() / "t" / "sub" / "f") << "from the archive\n";
  fs::create_symlink("sub/f", src.path() / "t" / "l");
  auto tar = test::run_command({"tar", "--owner=7", "--group=8", "--mtime=@1600000000", "-C", src.path().string(), "-cf",
                                (src.path() / "arch.tar").string(), "t"});
  REQUIRE_MESSAGE(tar.exit_code == 0, tar.err);
  std::ifstream in(src.path() / "arch.tar", std::ios::binary);
  std::string archive((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The image's own init files: the chroot level writes the step's over them and puts them
  // back, so neither they nor /etc show up in a layer, as with the namespace sandbox's binds.
  check_same_image(R"(FROM cbuild-test-busybox:1
ADD arch.tar /x/
COPY etc/ /etc/
RUN chown 1000:1000 /root && rm -rf /usr/sbin && echo 1.2.3.4 extra >> /etc/hosts && rm /x/t/l
RUN mv /x/t/sub /x/moved && touch -d @1600000000 /x/moved/f && grep -q cbuild /etc/hostname
)",
                   {{"arch.tar", archive},
                    {"etc/hosts", "10.0.0.1 image\n"},
                    {"etc/resolv.conf", "nameserver 10.0.0.2\n"},
                    {"etc/hostname", "image\n"}});
}

TEST_CASE("isolation chroot: builds with docker's default capabilities, without CAP_SYS_ADMIN") {
  REQUIRE_ROOT();
  const std::string& caps = test::kDockerDefaultCaps;
  check_same_image(kFilesDockerfile, kFiles, [&](const test::BuildProject& b, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"setpriv", "--inh-caps=" + caps, "--bounding-set=" + caps, "--", CBUILD_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env = kEpoch;
    env.push_back("TMPDIR=" + b.tmp.string());
    return test::run_command(argv, {}, env);
  });
}

// Root without CAP_SYS_ADMIN where user namespaces are allowed (Kubernetes with hostUsers:
// false, an unconfined seccomp profile): `auto` enters a user namespace that maps root's ids
// onto themselves, and the overlay build gives the image the root build gives.
TEST_CASE("isolation auto: root without CAP_SYS_ADMIN enters a user namespace and builds the same image") {
  REQUIRE_ROOT();
  const std::string& caps = test::kDockerDefaultCaps;
  check_same_image(
      kFilesDockerfile, kFiles,
      [&](const test::BuildProject& b, const std::vector<std::string>& args) {
        std::vector<std::string> argv{"setpriv", "--inh-caps=" + caps, "--bounding-set=" + caps, "--", CBUILD_BINARY};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<std::string> env = kEpoch;
        env.push_back("TMPDIR=" + b.tmp.string());
        return test::run_command(argv, {}, env);
      },
      "--isolation=auto", "cbuild: isolation userns: root without CAP_SYS_ADMIN, cbuild enters a user namespace");
}

// What CI containers see: docker's default seccomp profile (no unshare, no mount) and
// capabilities. The container chroots into the host's root (bound at /host) to find cbuild and
// its libraries; `auto` must find out by itself that only chroot isolation works there.
TEST_CASE("isolation auto: inside docker run with docker's defaults it picks chroot and builds the same image") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  check_same_image(
      kFilesDockerfile, kFiles,
      [&](const test::BuildProject& b, const std::vector<std::string>& args) {
        std::vector<std::string> argv{"run", "--rm", "--network=none", "-v", "/:/host", "-e", kEpoch[0],
                                      "-e", "TMPDIR=" + b.tmp.string(), docker->base(), "/bin/busybox", "chroot", "/host",
                                      CBUILD_BINARY};
        argv.insert(argv.end(), args.begin(), args.end());
        return docker->docker(argv);
      },
      "--isolation=auto", "cbuild: isolation chroot: this process may not create user namespaces (unshare(CLONE_NEWUSER): ");

  // Asking for userns there is refused up front, naming what is missing and what would give it.
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\nRUN true\n");
  auto r = docker->docker({"run", "--rm", "--network=none", "-v", "/:/host", docker->base(), "/bin/busybox", "chroot",
                           "/host", CBUILD_BINARY, "--root", p.root.string(), "--isolation=userns", p.ctx.string()});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("--isolation=userns: this process may not create a user namespace (unshare(CLONE_NEWUSER): "
                           "Operation not permitted) and is not root with CAP_SYS_ADMIN") != std::string::npos,
                r.err);
  CHECK_MESSAGE(r.err.find("--isolation=chroot") != std::string::npos, r.err);
}

TEST_CASE("isolation chroot: RUN --mount cannot be honoured and says so") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\nRUN --mount=type=tmpfs,target=/t true\n");
  auto r = p.build({"--isolation=chroot"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("RUN --mount cannot be honoured with chroot isolation") != std::string::npos, r.err);
}

// Where the chroot level is needed (no CAP_SYS_ADMIN), a bind mount is refused for the level,
// before its view of the context would be mounted.
TEST_CASE("isolation chroot: RUN --mount=type=bind without CAP_SYS_ADMIN is refused for the level") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\nRUN --mount=type=bind,target=/m ls /m\n");
  p.file("f", "x\n");
  std::vector<std::string> argv{"setpriv", "--inh-caps=" + test::kDockerDefaultCaps,
                                "--bounding-set=" + test::kDockerDefaultCaps, "--", CBUILD_BINARY,
                                "--root", p.root.string(), "--isolation=chroot", p.ctx.string()};
  auto r = test::run_command(argv, {}, {"TMPDIR=" + p.tmp.string()});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("RUN --mount cannot be honoured with chroot isolation") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("Dockerfile:2") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("fsopen") == std::string::npos, r.err);
}

TEST_CASE("isolation: a bad --isolation value is a usage error") {
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\n");
  auto r = p.build({"--isolation=bogus"});
  CHECK(r.exit_code == 2);
  CHECK_MESSAGE(r.err.find("--isolation: unknown isolation \"bogus\" (expected auto, userns or chroot)") != std::string::npos, r.err);
}

TEST_CASE("isolation: a bad CBUILD_ISOLATION value is a usage error naming the variable") {
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\n");
  auto r = p.build({}, {"CBUILD_ISOLATION=bogus"});
  CHECK(r.exit_code == 2);
  CHECK_MESSAGE(r.err.find("CBUILD_ISOLATION: unknown isolation \"bogus\" (expected auto, userns or chroot)") !=
                    std::string::npos,
                r.err);
  // The flag wins: the variable is not even read.
  auto f = p.build({"--isolation=other"}, {"CBUILD_ISOLATION=bogus"});
  CHECK(f.exit_code == 2);
  CHECK_MESSAGE(f.err.find("--isolation: unknown isolation \"other\"") != std::string::npos, f.err);
  CHECK_MESSAGE(f.err.find("bogus") == std::string::npos, f.err);
}

// CBUILD_ISOLATION is --isolation's default, for a CI job that builds in one kind of container;
// the flag wins over it.
TEST_CASE("isolation chroot: CBUILD_ISOLATION=chroot selects it, and --isolation wins over it") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\nRUN echo x > /x\n");
  auto r = p.build({"--no-cache"}, {"CBUILD_ISOLATION=chroot"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK_MESSAGE(r.err.find("cbuild: isolation chroot: asked for with CBUILD_ISOLATION=chroot") != std::string::npos,
                r.err);
  // Straight as root (not through the suite's CBUILD_TEST_CAPS): without CAP_SYS_ADMIN the
  // userns level refuses a store root's overlay snapshots are in.
  auto u = test::run_command(
      {CBUILD_BINARY, "--root", p.root.string(), "--no-cache", "--isolation=userns", p.ctx.string()}, {},
      {"CBUILD_ISOLATION=chroot", "TMPDIR=" + p.tmp.string()});
  REQUIRE_MESSAGE(u.exit_code == 0, u.err);
  CHECK_MESSAGE(u.err.find("isolation chroot") == std::string::npos, u.err);
  // What the chroot level cannot honour is refused when the variable selects it too.
  auto n = p.build({"--network=none"}, {"CBUILD_ISOLATION=chroot"});
  CHECK(n.exit_code == 1);
  CHECK_MESSAGE(n.err.find("--network=none cannot be honoured with chroot isolation") != std::string::npos, n.err);
}

TEST_CASE("isolation chroot: --network=none cannot be honoured and says so") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\nRUN true\n");
  auto r = p.build({"--isolation=chroot", "--network=none"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("--network=none cannot be honoured with chroot isolation") != std::string::npos, r.err);
}

TEST_CASE("isolation chroot: a failing RUN names its exit code and leaves no rootfs behind") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM cbuild-test-busybox:1\nRUN echo before && exit 3\n");
  auto r = p.build({"--isolation=chroot"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("exit code: 3") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find(" > before") != std::string::npos, r.err);
  for (auto& e : fs::directory_iterator(p.root / "snapshots" / ".tmp"))
    CHECK_MESSAGE(e.path().filename().string().rfind("flat-", 0) != 0, e.path());
}

TEST_CASE("isolation chroot: cbuild run and mount without CAP_SYS_ADMIN say what is missing") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"run", "--rm", "cbuild-test-busybox:1", "true"}, std::vector<std::string>{"mount", "cbuild-test-busybox:1"}}) {
    std::vector<std::string> argv{"setpriv", "--inh-caps=" + test::kDockerDefaultCaps,
                                  "--bounding-set=" + test::kDockerDefaultCaps, "--", CBUILD_BINARY, "--root", p.root.string()};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    auto r = test::run_command(argv, {}, {"TMPDIR=" + p.tmp.string()});
    CAPTURE(cmd.front());
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find("needs CAP_SYS_ADMIN") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("fsopen") == std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("clone3") == std::string::npos, r.err);
  }
  CHECK_FALSE(test::has_mounts_under(p.root));
}
