// A RUN that writes into a setuid or setgid file: the kernel clears the bits unless the writer
// has CAP_FSETID in the initial user namespace, so a rootless RUN loses them where root's (and
// docker's) keeps them. Rootless builds must give root's layers anyway: for files of the base
// image (owned by a mapped id or by one outside the mapping), for files an earlier RUN made
// setuid, and after a step that removed the bit with chmod. A write and a chmod u-s in the same
// RUN cannot be told from a write alone: the build keeps the bit and says so. Root's layers
// are docker's; the chroot level keeps the bits as root's does, with CAP_FSETID and without.
// Snapshots of a store made before the records get them when the store is first opened.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "tests/cli/rootless_project.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/as_test_user.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/layer_listing.h"
#include "tests/support/root.h"
#include "tests/support/store_image.h"
#include "tests/support/unprivileged_user.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

constexpr uid_t kHigh = 70000;

void set_id_file(const fs::path& p, mode_t mode, uid_t uid, gid_t gid) {
  test::write_text(p, "image\n");
  REQUIRE(::chown(p.c_str(), uid, gid) == 0);
  REQUIRE(::chmod(p.c_str(), mode) == 0);
  // Well before the build, so a write during it moves the mtime whatever the clock's grain.
  const struct timespec t[2] = {{.tv_sec = 1600000000, .tv_nsec = 0}, {.tv_sec = 1600000000, .tv_nsec = 0}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW) == 0);
}

void put_setuid_base(const fs::path& store) {
  TempDir tree;
  fs::path r = tree.path() / "rootfs";
  test::make_busybox_rootfs(r);
  fs::create_directories(r / "opt");
  set_id_file(r / "opt/su-append", 04755, 0, 0);
  set_id_file(r / "opt/sg-append", 02755, 0, 42);
  set_id_file(r / "opt/su-far", 04755, kHigh, kHigh);  // a placeholder owner besides
  set_id_file(r / "opt/su-chmod", 04755, 0, 0);
  set_id_file(r / "opt/su-both", 04755, 0, 0);
  auto s = oci::LayoutStore::open(store);
  test::put_rootfs_image(*s, r, "docker.io/library/cbuild-test-setuid:1");
}

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  REQUIRE_MESSAGE(::lstat(p.c_str(), &st) == 0, p);
  return st;
}

mode_t perm_of(const fs::path& p) { return lstat_of(p).st_mode & 07777; }

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Whether a layer listing (layer_listing.h: modes in decimal) has the regular file `path` with `mode`.
bool lists(const std::string& listing, const std::string& path, mode_t mode) {
  return has("\n" + listing, "\n" + path + " file " + std::to_string(mode) + " ");
}

const char* const kWarning = "rootless mode: this step wrote into ";

// Created setuid/setgid by one RUN, written by the next; docker's base has no set-id file.
const char* const kMadeThenWritten =
    "FROM {BASE}\n"
    "RUN echo made > /su && chmod 4755 /su && echo made > /sg && chgrp 42 /sg && chmod 2755 /sg\n"
    "RUN echo more >> /su && echo more >> /sg\n";

}  // namespace

TEST_CASE("rootless setuid: a RUN that writes into a setuid or setgid file keeps the bits, as root's [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  test::RootlessProject rp(user, put_setuid_base);
  rp.p.file("Dockerfile",
            "FROM cbuild-test-setuid:1\n"
            "RUN echo more >> /opt/su-append && echo more >> /opt/sg-append && echo more >> /opt/su-far\n"
            "RUN chmod u-s /opt/su-chmod\n"
            "RUN echo later >> /opt/su-chmod\n"
            "RUN echo made > /opt/made && chmod 4755 /opt/made && echo g > /opt/made-g && chmod 2755 /opt/made-g\n"
            "RUN echo more >> /opt/made && echo more >> /opt/made-g\n");
  auto rootless = rp.build_as(user, "setuid:rootless");
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  auto rooted = rp.build_as_root("setuid:root");
  INFO("root stderr: " << rooted.err);
  REQUIRE(rooted.exit_code == 0);
  CHECK(test::RootlessProject::digest(rp.p.root, "setuid:rootless") ==
        test::RootlessProject::digest(rp.root_store, "setuid:root"));

  // Equal, and right: the bits are there (not two images that both lost them).
  auto [config, tree] = rp.p.image("docker.io/library/setuid:rootless", rp.p.dir.path() / "flat");
  CHECK(perm_of(tree / "opt/su-append") == 04755);
  CHECK(test::read_text(tree / "opt/su-append") == "image\nmore\n");
  CHECK(perm_of(tree / "opt/sg-append") == 02755);
  CHECK(lstat_of(tree / "opt/sg-append").st_gid == 42);
  CHECK(perm_of(tree / "opt/su-far") == 04755);
  CHECK(lstat_of(tree / "opt/su-far").st_uid == kHigh);
  CHECK(perm_of(tree / "opt/su-chmod") == 0755);  // chmod u-s, then a write: stays off
  CHECK(test::read_text(tree / "opt/su-chmod") == "image\nlater\n");
  CHECK(perm_of(tree / "opt/made") == 04755);
  CHECK(perm_of(tree / "opt/made-g") == 02755);
  CHECK(test::read_text(tree / "opt/made") == "made\nmore\n");

  // The restores are said, naming the files; the chmod steps are exact and say nothing.
  CHECK(has(rootless.err, std::string("RUN on line 2: ") + kWarning + "3 setuid/setgid file(s) (opt/sg-append, "
                                                                       "opt/su-append, opt/su-far)"));
  CHECK(has(rootless.err, std::string("RUN on line 6: ") + kWarning + "2 setuid/setgid file(s) (opt/made, opt/made-g)"));
  CHECK_FALSE(has(rootless.err, std::string("RUN on line 3: ") + kWarning));
  CHECK_FALSE(has(rootless.err, std::string("RUN on line 4: ") + kWarning));
  // (The rootless suite's second pass runs the "root" build rootless as well.)
  if (!test::test_user()) CHECK_FALSE(has(rooted.err, kWarning));
  CHECK_FALSE(test::has_mounts_under(rp.p.dir.path()));
}

// Named "rootless: …": its root and rootless images differ by design, so the rootless suite's
// second pass (which would build both rootless) leaves it out, as other side-by-side cases.
TEST_CASE("rootless: a write and a chmod u-s in one RUN keep the setuid bit, and the build says so [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  test::RootlessProject rp(user, put_setuid_base);
  rp.p.file("Dockerfile", "FROM cbuild-test-setuid:1\nRUN echo more >> /opt/su-both && chmod u-s /opt/su-both\n");
  auto rootless = rp.build_as(user, "both:rootless");
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  auto rooted = rp.build_as_root("both:root");
  INFO("root stderr: " << rooted.err);
  REQUIRE(rooted.exit_code == 0);
  // Told apart from a write alone it cannot be: the warning names the file, what cbuild did
  // and why, and the image holds what the warning says.
  CHECK(has(rootless.err, std::string("RUN on line 2: ") + kWarning + "1 setuid/setgid file(s) (opt/su-both); the user "
                          "namespace cleared their setuid/setgid bits, which a root build keeps, so the layer keeps "
                          "them; a chmod that removed them in the same step is lost"));
  auto [c1, mine] = rp.p.image("docker.io/library/both:rootless", rp.p.dir.path() / "mine");
  CHECK(perm_of(mine / "opt/su-both") == 04755);
  const fs::path own = rp.p.root;
  rp.p.root = rp.root_store;
  auto [c2, theirs] = rp.p.image("docker.io/library/both:root", rp.p.dir.path() / "theirs");
  rp.p.root = own;
  // (The rootless suite's second pass runs the "root" build rootless as well.)
  CHECK(perm_of(theirs / "opt/su-both") == (test::test_user() ? 04755 : 0755));
}

TEST_CASE("rootless setuid: a setuid file made by one RUN and written by the next is docker's [root]") {
  REQUIRE_ROOT();
  TempDir work;
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", test::dockerfile_text(p, kMadeThenWritten));
  auto r = p.build({"-t", "img:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto mine = test::image_layer_listings(p, "docker.io/library/img:1", work.path() / "mine");
  REQUIRE(mine.size() >= 2);
  // The written layer holds both files with their bits (the listing shows modes).
  CHECK_MESSAGE(lists(mine.back(), "su", 04755), mine.back());
  CHECK_MESSAGE(lists(mine.back(), "sg", 02755), mine.back());

  // The same Dockerfile rootless gives the same image.
  test::UnprivilegedUser user;
  test::RootlessProject rp(user);
  rp.p.file("Dockerfile", test::dockerfile_text(rp.p, kMadeThenWritten));
  auto rootless = rp.build_as(user, "made:rootless");
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  auto rooted = rp.build_as_root("made:root");
  INFO("root stderr: " << rooted.err);
  REQUIRE(rooted.exit_code == 0);
  CHECK(test::RootlessProject::digest(rp.p.root, "made:rootless") ==
        test::RootlessProject::digest(rp.root_store, "made:root"));

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker", {"--no-cache"});
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  auto want = test::docker_layer_listings(work.path() / "docker");
  REQUIRE(want.size() == mine.size());
  CHECK(mine[mine.size() - 2] == want[want.size() - 2]);
  CHECK(mine.back() == want.back());
}

// Its own case: a non-root cbuild refuses the chroot level, and the rootless suite leaves
// "isolation chroot: *" cases out of its rootless pass.
TEST_CASE("isolation chroot: a RUN that writes into a setuid file keeps the bit, as docker's [root]") {
  REQUIRE_ROOT();
  TempDir work;
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", test::dockerfile_text(p, kMadeThenWritten));
  auto r = p.build({"--isolation=chroot", "-t", "img:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto mine = test::image_layer_listings(p, "docker.io/library/img:1", work.path() / "chr");
  REQUIRE(mine.size() >= 2);
  CHECK_MESSAGE(lists(mine.back(), "su", 04755), mine.back());
  CHECK_MESSAGE(lists(mine.back(), "sg", 02755), mine.back());
  auto d = p.build({"--no-cache", "-t", "img:2"});
  REQUIRE_MESSAGE(d.exit_code == 0, d.err);
  auto def = test::image_layer_listings(p, "docker.io/library/img:2", work.path() / "def");
  REQUIRE(def.size() == mine.size());
  CHECK(def.back() == mine.back());
}

// Without CAP_FSETID (docker run --cap-drop FSETID) a chroot RUN's write clears the bits, as
// in a user namespace: the layer keeps them, root's as ever, and the build says so. (Its chmod
// g+s of a file of another group than its own is ignored too, which nothing can undo: the
// level says so when chosen, and this Dockerfile keeps to root's group.)
const char* const kMadeInOwnGroup =
    "FROM {BASE}\n"
    "RUN echo made > /su && chmod 4755 /su && echo made > /sg && chmod 2755 /sg\n"
    "RUN echo more >> /su && echo more >> /sg\n";

TEST_CASE("isolation chroot: without CAP_FSETID a written setuid file keeps the bit, and the build says so [root]") {
  REQUIRE_ROOT();
  TempDir work;
  test::BuildProject p;
  p.file("Dockerfile", test::dockerfile_text(p, kMadeInOwnGroup));
  auto d = p.build({"-t", "img:1"});
  REQUIRE_MESSAGE(d.exit_code == 0, d.err);
  auto def = test::image_layer_listings(p, "docker.io/library/img:1", work.path() / "def");
  const std::string caps =
      "-all,+chown,+dac_override,+fowner,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,"
      "+sys_chroot,+mknod,+audit_write,+setfcap";
  std::vector<std::string> argv{"setpriv", "--inh-caps=" + caps, "--bounding-set=" + caps, "--", CBUILD_BINARY,
                                "--root", p.root.string(), "--progress=plain", "--isolation=chroot", "--no-cache", "-t", "img:2",
                                p.ctx.string()};
  auto r = test::run_command(argv, {}, {"TMPDIR=" + p.tmp.string()});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto mine = test::image_layer_listings(p, "docker.io/library/img:2", work.path() / "chr");
  REQUIRE(mine.size() == def.size());
  CHECK(mine.back() == def.back());
  CHECK_MESSAGE(lists(mine.back(), "su", 04755), mine.back());
  CHECK_MESSAGE(has(r.err, "RUN on line 3: chroot isolation without CAP_FSETID: this step wrote into 2 "
                           "setuid/setgid file(s) (sg, su); the kernel cleared their setuid/setgid bits"),
                r.err);
  CHECK_FALSE(has(d.err, "this step wrote into"));
  CHECK_MESSAGE(has(r.err, "without CAP_FSETID a RUN's chmod g+s of a file whose group it is not in is ignored"), r.err);
}

// A store whose snapshots an older cbuild made (set-id files without records): the first
// command of this version records them, so a write into one still keeps the bit.
TEST_CASE("rootless setuid: snapshots made before the records get them when the store is opened [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  test::RootlessProject rp(user, put_setuid_base);
  rp.p.file("Dockerfile", "FROM cbuild-test-setuid:1\nRUN echo x > /unrelated\n");
  auto first = rp.build_as(user, "first:rootless");
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  const fs::path snapshots = rp.p.root / "snapshots";
  REQUIRE(fs::exists(snapshots / ".setid-records"));
  int stripped = 0;
  for (const auto& e : fs::directory_iterator(snapshots)) {
    fs::path f = e.path() / "fs/opt/su-append";
    if (e.path().filename().string()[0] == '.' || !fs::exists(f)) continue;
    REQUIRE(::lremovexattr(f.c_str(), "user.cbuild.override_stat") == 0);
    ++stripped;
  }
  REQUIRE(stripped == 1);
  fs::remove(snapshots / ".setid-records");

  rp.p.file("Dockerfile", "FROM cbuild-test-setuid:1\nRUN echo more >> /opt/su-append\n");
  auto second = rp.build_as(user, "second:rootless");
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  CHECK(fs::exists(snapshots / ".setid-records"));
  auto [config, tree] = rp.p.image("docker.io/library/second:rootless", rp.p.dir.path() / "flat");
  CHECK(perm_of(tree / "opt/su-append") == 04755);
  CHECK(has(second.err, std::string("RUN on line 2: ") + kWarning + "1 setuid/setgid file(s) (opt/su-append)"));
}
