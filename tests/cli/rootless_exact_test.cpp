// Rootless builds of base images holding what a user namespace cannot write — a character
// and a block device, a fifo and a setuid file owned 70000:70000, a directory owned
// 4294967294 — give root's image, byte for byte: COPY on top, a RUN beside them, a RUN that
// chowns/chmods them or appends to one, COPY --from of them; with a subordinate range and
// with the single-id mapping. Root builds each Dockerfile into a copy of the store; the
// digests must match, and the rootless image must hold the real nodes and owners.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "tests/cli/rootless_project.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"
#include "tests/support/store_image.h"
#include "tests/support/unprivileged_user.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

constexpr uid_t kHigh = 70000;
constexpr uid_t kTop = 4294967294u;

void put_exact_base(const fs::path& store) {
  TempDir tree;
  fs::path r = tree.path() / "rootfs";
  test::make_busybox_rootfs(r);
  // Not below /dev, which a RUN sees as the host's.
  fs::create_directories(r / "nodes");
  REQUIRE(::mknod((r / "nodes/mychar").c_str(), S_IFCHR | 0620, makedev(4, 1)) == 0);
  REQUIRE(::chown((r / "nodes/mychar").c_str(), 0, 5) == 0);
  REQUIRE(::mknod((r / "nodes/myblock").c_str(), S_IFBLK | 0660, makedev(8, 0)) == 0);
  REQUIRE(::chown((r / "nodes/myblock").c_str(), 0, 6) == 0);
  fs::create_directories(r / "data/highdir");
  test::write_text(r / "data/high", "high\n");
  REQUIRE(::chown((r / "data/high").c_str(), kHigh, kHigh) == 0);
  REQUIRE(::chmod((r / "data/high").c_str(), 04755) == 0);
  REQUIRE(::mkfifo((r / "data/fifo").c_str(), 0640) == 0);
  REQUIRE(::chown((r / "data/fifo").c_str(), kHigh, kHigh) == 0);
  test::write_text(r / "data/highdir/inner", "inner\n");
  test::write_text(r / "data/plain", "plain\n");
  REQUIRE(::chown((r / "data/plain").c_str(), kHigh, kHigh + 1) == 0);
  REQUIRE(::chmod((r / "data/plain").c_str(), 0640) == 0);
  REQUIRE(::chown((r / "data/highdir").c_str(), kTop, kTop) == 0);
  REQUIRE(::chmod((r / "data/highdir").c_str(), 0750) == 0);
  auto s = oci::LayoutStore::open(store);
  test::put_rootfs_image(*s, r, "docker.io/library/cbuild-test-exact:1");
}

struct Case {
  std::string name;
  std::string dockerfile;
};

// Builds each case rootless and as root; their digests must be the same.
void check_same_as_root(test::RootlessProject& rp, const test::UnprivilegedUser& user, const Case& c) {
  CAPTURE(c.name);
  rp.p.file("Dockerfile", c.dockerfile);
  auto rootless = rp.build_as(user, c.name + ":rootless");
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  auto rooted = rp.build_as_root(c.name + ":root");
  INFO("root stderr: " << rooted.err);
  REQUIRE(rooted.exit_code == 0);
  CHECK(test::RootlessProject::digest(rp.p.root, c.name + ":rootless") ==
        test::RootlessProject::digest(rp.root_store, c.name + ":root"));
}

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  REQUIRE_MESSAGE(::lstat(p.c_str(), &st) == 0, p);
  return st;
}

}  // namespace

TEST_CASE("rootless exact: nodes and owners outside the mapping come out as root's [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  test::RootlessProject rp(user, put_exact_base);
  rp.p.file("a.txt", "copied\n");

  const std::vector<Case> cases = {
      {"copy", "FROM cbuild-test-exact:1\nCOPY a.txt /data/highdir/a.txt\nCOPY a.txt /nodes/a.txt\n"},
      {"run-beside", "FROM cbuild-test-exact:1\nRUN echo x > /unrelated && echo y > /data/highdir/y\n"},
      {"run-chown", "FROM cbuild-test-exact:1\n"
                    "RUN chown 1000:1000 /data/high && chmod 0640 /nodes/mychar && chown 1:1 /nodes/myblock && "
                    "chmod 0700 /data/highdir && chown 2:2 /data/fifo\n"},
      {"run-append", "FROM cbuild-test-exact:1\nRUN echo more >> /data/plain && echo in >> /data/highdir/inner\n"},
      {"copy-from", "FROM cbuild-test-exact:1 AS src\n"
                    "RUN echo staged > /data/staged\n"
                    "FROM cbuild-test-busybox:1\n"
                    "COPY --from=src /nodes/mychar /nodes/myblock /data/high /data/fifo /copied/\n"
                    "COPY --from=src /data /copied/data\n"
                    "RUN echo done > /done\n"},
  };
  for (const auto& c : cases) check_same_as_root(rp, user, c);

  // The images hold the real nodes and owners (equality is not of two wrong images).
  fs::path flat = rp.p.dir.path() / "flat";
  auto [c1, copy] = rp.p.image("docker.io/library/copy:rootless", flat / "copy");
  struct stat st = lstat_of(copy / "nodes/mychar");
  CHECK(S_ISCHR(st.st_mode));
  CHECK(st.st_rdev == makedev(4, 1));
  st = lstat_of(copy / "nodes/myblock");
  CHECK(S_ISBLK(st.st_mode));
  st = lstat_of(copy / "data/highdir");
  CHECK(st.st_uid == kTop);
  CHECK((st.st_mode & 07777) == 0750);
  st = lstat_of(copy / "data/high");
  CHECK(st.st_uid == kHigh);
  CHECK((st.st_mode & 07777) == 04755);
  CHECK(S_ISFIFO(lstat_of(copy / "data/fifo").st_mode));

  auto [c2, chowned] = rp.p.image("docker.io/library/run-chown:rootless", flat / "chown");
  st = lstat_of(chowned / "data/high");
  CHECK(st.st_uid == 1000);
  CHECK((st.st_mode & 07777) == 0755);  // chown clears setuid, as for root
  st = lstat_of(chowned / "nodes/mychar");
  CHECK(S_ISCHR(st.st_mode));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_uid == 0);
  st = lstat_of(chowned / "data/highdir");
  CHECK(st.st_uid == kTop);
  CHECK((st.st_mode & 07777) == 0700);
  st = lstat_of(chowned / "data/fifo");
  CHECK(S_ISFIFO(st.st_mode));
  CHECK(st.st_uid == 2);

  auto [c3, appended] = rp.p.image("docker.io/library/run-append:rootless", flat / "append");
  st = lstat_of(appended / "data/plain");
  CHECK(st.st_uid == kHigh);
  CHECK(st.st_gid == kHigh + 1);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(test::read_text(appended / "data/plain") == "plain\nmore\n");

  auto [c4, copied] = rp.p.image("docker.io/library/copy-from:rootless", flat / "from");
  // COPY makes a device node an empty file with its mode and owner, and skips a fifo, as
  // docker's does (builder/steps/copy_rules.h) — from a placeholder as from the real node.
  st = lstat_of(copied / "copied/mychar");
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == (lstat_of(copy / "nodes/mychar").st_mode & 07777));
  CHECK(st.st_gid == 5);
  CHECK(S_ISREG(lstat_of(copied / "copied/myblock").st_mode));
  CHECK(lstat_of(copied / "copied/high").st_uid == kHigh);
  CHECK_FALSE(fs::exists(fs::symlink_status(copied / "copied/fifo")));
  CHECK(lstat_of(copied / "copied/data/highdir").st_uid == kTop);
  CHECK(lstat_of(copied / "copied/data/plain").st_gid == kHigh + 1);
  CHECK_FALSE(test::has_mounts_under(rp.p.dir.path()));
}

TEST_CASE("rootless exact: with a single mapped id, nodes and other owners come out as root's [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  user.without_subordinate_ids();
  test::RootlessProject rp(user, put_exact_base);
  rp.p.file("a.txt", "copied\n");
  const std::vector<Case> cases = {
      {"single-copy", "FROM cbuild-test-exact:1\nCOPY a.txt /data/highdir/a.txt\n"},
      {"single-run", "FROM cbuild-test-exact:1\n"
                     "RUN echo x > /unrelated && chmod 0600 /nodes/mychar && echo more >> /data/plain\n"},
      {"single-from", "FROM cbuild-test-exact:1 AS src\nRUN echo staged > /data/staged\n"
                      "FROM cbuild-test-busybox:1\nCOPY --from=src /nodes/myblock /data/high /copied/\n"
                      "RUN echo done > /done\n"},
  };
  for (const auto& c : cases) check_same_as_root(rp, user, c);
  auto [config, tree] = rp.p.image("docker.io/library/single-run:rootless", rp.p.dir.path() / "flat");
  struct stat st = lstat_of(tree / "nodes/mychar");
  CHECK(S_ISCHR(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(lstat_of(tree / "data/plain").st_uid == kHigh);
  CHECK(test::read_text(tree / "data/plain") == "plain\nmore\n");

  // A chown to the stand-in owner (0 here) cannot be told from a write: the layer keeps the
  // image's owner, and the build says so instead of staying silent.
  rp.p.file("Dockerfile", "FROM cbuild-test-exact:1\nRUN chown root:root /data/plain\n");
  auto chowned = rp.build_as(user, "single-chown:rootless");
  REQUIRE_MESSAGE(chowned.exit_code == 0, chowned.err);
  CHECK_MESSAGE(chowned.err.find("RUN on line 2: rootless mode: this step changed 1 file(s)") != std::string::npos,
                chowned.err);
  CHECK_MESSAGE(chowned.err.find("data/plain") != std::string::npos, chowned.err);
  CHECK_FALSE(test::has_mounts_under(rp.p.dir.path()));
}

TEST_CASE("rootless exact: -o - writes root's tar of nodes and far owners [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  test::RootlessProject rp(user, put_exact_base);
  rp.p.file("Dockerfile", "FROM cbuild-test-exact:1\nRUN echo x > /unrelated\n");
  auto args = [&](const fs::path& store) {
    return std::vector<std::string>{"--root", store.string(), "--progress=plain", "-o", "-", rp.p.ctx.string()};
  };
  auto rootless = user.run_cbuild(args(rp.p.root), rp.env());
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  auto rooted = test::run_cbuild(args(rp.root_store), {}, rp.env());
  INFO("root stderr: " << rooted.err);
  REQUIRE(rooted.exit_code == 0);
  CHECK(rootless.out.size() > 10240);
  CHECK(rootless.out == rooted.out);
  CHECK(rootless.out.find("user.cbuild") == std::string::npos);
}
