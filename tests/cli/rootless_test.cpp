// Rootless mode through the real binary, run by a freshly created unprivileged user: the same
// image digest as root's build (several owners, a setuid bit, a whiteout, an opaque
// directory), the one-id mapping and its notice, base images with device nodes, and the
// store's default path.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"
#include "tests/support/store_image.h"
#include "tests/support/unprivileged_user.h"
#include "tests/cli/rootless_project.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("rootless: a build with several owners gives root's image digest [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  test::RootlessProject rp(user);
  rp.p.file("a.txt", "copied\n");
  rp.p.file("Dockerfile",
            "FROM cbuild-test-busybox:1\n"
            "COPY a.txt /a.txt\n"
            "COPY --chown=1000:1500 a.txt /home/app/a.txt\n"
            "RUN mkdir /owned && echo one > /owned/one && echo k > /owned/k && echo far > /owned/far && "
            "chown 1:1 /owned/one && chown 1000:1000 /owned/k && chmod 4755 /owned/k && "
            "chown 65534:65534 /owned/far && chmod 2755 /owned/far\n"
            "RUN rm /bin/vi\n"
            "RUN rm -rf /usr/sbin && mkdir /usr/sbin && echo new > /usr/sbin/new\n"
            "USER 1000:1000\n"
            "RUN id > /tmp/id-of-app\n");

  auto rootless = rp.build_as(user, "rootless:1");
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  CHECK(rootless.err.find("single id") == std::string::npos);
  auto rooted = rp.build_as_root("rooted:1");
  INFO("root stderr: " << rooted.err);
  REQUIRE(rooted.exit_code == 0);

  CHECK(test::RootlessProject::digest(rp.p.root, "rootless:1") == test::RootlessProject::digest(rp.root_store, "rooted:1"));

  // And the content is what the Dockerfile says (so equality is not of two wrong images).
  auto [config, tree] = rp.p.image("docker.io/library/rootless:1", rp.p.dir.path() / "flat" / "rootfs");
  struct stat st {};
  REQUIRE(::lstat((tree / "owned/one").c_str(), &st) == 0);
  CHECK(st.st_uid == 1);
  REQUIRE(::lstat((tree / "owned/k").c_str(), &st) == 0);
  CHECK(st.st_uid == 1000);
  CHECK((st.st_mode & 07777) == 04755);
  REQUIRE(::lstat((tree / "owned/far").c_str(), &st) == 0);
  CHECK(st.st_gid == 65534);
  CHECK((st.st_mode & 07777) == 02755);
  REQUIRE(::lstat((tree / "home/app/a.txt").c_str(), &st) == 0);
  CHECK(st.st_gid == 1500);
  CHECK_FALSE(fs::exists(fs::symlink_status(tree / "bin/vi")));
  CHECK(fs::exists(tree / "usr/sbin/new"));
  CHECK_FALSE(fs::exists(fs::symlink_status(tree / "usr/sbin/chroot")));
  CHECK(test::read_text(tree / "tmp/id-of-app").starts_with("uid=1000"));
  CHECK_FALSE(test::has_mounts_under(rp.p.dir.path()));

  // Root cannot stack the user's snapshots: their opaque marks are user.overlay.* xattrs.
  auto mixed = test::run_cbuild(rp.args(rp.p.root, "mixed:1"), {}, rp.env());
  CHECK(mixed.exit_code != 0);
  CHECK(mixed.err.find("made by a rootless cbuild") != std::string::npos);
}

TEST_CASE("rootless: without subordinate ids one id is mapped, said once [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  user.without_subordinate_ids();
  test::RootlessProject rp(user);
  rp.p.file("a.txt", "copied\n");
  rp.p.file("Dockerfile",
            "FROM cbuild-test-busybox:1\n"
            "COPY a.txt /a.txt\n"
            "RUN mkdir /made && echo x > /made/x && chmod 4755 /made/x && rm /bin/vi\n");
  auto rootless = rp.build_as(user, "single:1");
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  CHECK(count(rootless.err, "rootless mode with a single id") == 1);
  CHECK(rootless.err.find("chown") != std::string::npos);
  auto rooted = rp.build_as_root("single-root:1");
  REQUIRE(rooted.exit_code == 0);
  CHECK(test::RootlessProject::digest(rp.p.root, "single:1") == test::RootlessProject::digest(rp.root_store, "single-root:1"));

  // COPY --chown writes its layer straight from the context (root's bytes); the RUN on top
  // needs a snapshot holding owner 1000, which one id cannot map: a placeholder owned by 0
  // records it, and the image is still root's.
  rp.p.file("Dockerfile", "FROM cbuild-test-busybox:1\nCOPY --chown=1000:1000 a.txt /a.txt\nRUN cat /a.txt\n");
  auto placeholder = rp.build_as(user, "single:2");
  INFO("placeholder stderr: " << placeholder.err);
  REQUIRE(placeholder.exit_code == 0);
  auto rooted2 = rp.build_as_root("single-root:2");
  REQUIRE(rooted2.exit_code == 0);
  CHECK(test::RootlessProject::digest(rp.p.root, "single:2") ==
        test::RootlessProject::digest(rp.root_store, "single-root:2"));
  CHECK_FALSE(test::has_mounts_under(rp.p.dir.path()));
}

TEST_CASE("rootless: the store defaults to $XDG_DATA_HOME/cbuild, else ~/.local/share/cbuild [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  auto home = user.run_cbuild({"images"});
  INFO(home.err);
  CHECK(home.exit_code == 0);
  CHECK(fs::exists(user.home() / ".local/share/cbuild/oci-layout"));

  fs::path xdg = user.home() / "xdg";
  auto r = user.run({"mkdir", "-p", xdg.string()});
  REQUIRE(r.exit_code == 0);
  auto with_xdg = user.run_cbuild({"images"}, {"XDG_DATA_HOME=" + xdg.string()});
  INFO(with_xdg.err);
  CHECK(with_xdg.exit_code == 0);
  CHECK(fs::exists(xdg / "cbuild/oci-layout"));

  // The chroot level is for a container's root; a user already in cbuild's own namespace is
  // told so rather than given other layers.
  auto r2 = user.run({"mkdir", "-p", (user.home() / "ctx").string()});
  REQUIRE(r2.exit_code == 0);
  auto chroot = user.run_cbuild({"--isolation=chroot", (user.home() / "ctx").string()});
  CHECK(chroot.exit_code == 1);
  CHECK_MESSAGE(chroot.err.find("--isolation=chroot is for a container's root") != std::string::npos, chroot.err);
}

TEST_CASE("rootless: cbuild run in a user namespace, network none on request, limits said [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  TempDir tmp;
  fs::permissions(tmp.path(), fs::perms(0755));
  fs::path rootfs = tmp.path() / "rootfs";
  test::make_busybox_rootfs(rootfs);
  user.own(rootfs);
  // /dev/null and /dev/zero are the host's devices (a user namespace cannot make nodes).
  auto host = user.run_cbuild({"run", "--rootfs", rootfs.string(), "sh", "-c",
                               "id -u; test -c /dev/null && echo hi > /dev/null && echo null-ok; "
                               "head -c 4 /dev/zero | wc -c; cat /proc/self/uid_map | wc -l; ip link | grep -c ': '"});
  INFO(host.err);
  REQUIRE(host.exit_code == 0);
  std::istringstream lines(host.out);
  std::string uid, null_ok, zero_bytes, map_lines, links;
  lines >> uid >> null_ok >> zero_bytes >> map_lines >> links;
  CHECK(uid == "0");
  CHECK(null_ok == "null-ok");
  CHECK(zero_bytes == "4");
  CHECK(map_lines == "2");  // 0 → the user, 1.. → the subordinate range
  auto none = user.run_cbuild(
      {"run", "--network", "none", "--rootfs", rootfs.string(), "sh", "-c", "ip link | grep -c ': '"});
  INFO(none.err);
  REQUIRE(none.exit_code == 0);
  CHECK(none.out == "1\n");  // only lo
  std::size_t host_links = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/sys/class/net")) ++host_links;
  CHECK(links == std::to_string(host_links));  // the host's network by default

  // This host delegates no cgroup to the user: the run goes on and names what it did without.
  auto limited = user.run_cbuild({"run", "--memory", "64m", "--rootfs", rootfs.string(), "sh", "-c", "echo ran"});
  INFO(limited.err);
  CHECK(limited.exit_code == 0);
  CHECK(limited.out == "ran\n");
  CHECK(limited.err.find("limit --memory not applied") != std::string::npos);
}

TEST_CASE("rootless: a base image with a device node builds as root's [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  test::RootlessProject rp(user, [](const fs::path& store) {
    TempDir tree;
    fs::path rootfs = tree.path() / "rootfs";
    test::make_busybox_rootfs(rootfs);
    REQUIRE(::mknod((rootfs / "dev/console").c_str(), S_IFCHR | 0600, makedev(5, 1)) == 0);
    auto s = oci::LayoutStore::open(store);
    test::put_rootfs_image(*s, rootfs, "docker.io/library/cbuild-test-devices:1");
  });
  rp.p.file("Dockerfile", "FROM cbuild-test-devices:1\nRUN echo built > /built\n");
  auto rooted = rp.build_as_root("devices-root:1");
  INFO("root stderr: " << rooted.err);
  REQUIRE(rooted.exit_code == 0);

  // The snapshot holds a placeholder for the node (a user namespace cannot make it); the
  // image is root's (tests/cli/rootless_exact_test.cpp goes through the cases).
  auto rootless = rp.build_as(user, "devices:1");
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  CHECK(test::RootlessProject::digest(rp.p.root, "devices:1") ==
        test::RootlessProject::digest(rp.root_store, "devices-root:1"));
  CHECK_FALSE(test::has_mounts_under(rp.p.dir.path()));
}
