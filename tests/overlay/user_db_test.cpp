#include "overlay/user_db.h"

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "tests/overlay/overlay_test_util.h"

using cbuild::Error;
using namespace cbuild::overlay;

namespace {
const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# comment\n"
    "broken line\n"
    "bad:x:notanumber:1::/:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\r\n"
    "nohome:x:1001:1001:::/bin/sh\n";
const char* kGroup = "root:x:0:\napp:x:1000:\nextra:x:1500:app,other\nwheel:x:10:other, app\ndup:x:1500:app\n";
}  // namespace

TEST_CASE("user_db: names, numbers, groups, as runc resolves them") {
  auto u = resolve_user("", kPasswd, kGroup);
  CHECK(u.uid == 0);
  CHECK(u.gid == 0);
  CHECK(u.home == "/root");
  u = resolve_user("app", kPasswd, kGroup);
  CHECK(u.uid == 1000);
  CHECK(u.gid == 1000);
  CHECK(u.home == "/home/app");
  CHECK(u.groups == std::vector<gid_t>{1500});  // " app" with a space is not "app"
  u = resolve_user("1000", kPasswd, kGroup);
  CHECK(u.name == "app");
  u = resolve_user("4242", kPasswd, kGroup);  // a uid without an entry is fine
  CHECK(u.uid == 4242);
  CHECK(u.gid == 0);
  CHECK(u.home == "/");
  CHECK(u.groups.empty());
  u = resolve_user("app:extra", kPasswd, kGroup);
  CHECK(u.gid == 1500);
  CHECK(u.groups.empty());  // an explicit group drops the supplementary ones
  u = resolve_user("app:77", kPasswd, kGroup);
  CHECK(u.gid == 77);
  CHECK(u.groups.empty());
  u = resolve_user("1000:10", kPasswd, kGroup);
  CHECK(u.gid == 10);
  CHECK(u.groups.empty());
  u = resolve_user("nohome", kPasswd, kGroup);
  CHECK(u.home == "/");
  u = resolve_user(":1000", kPasswd, kGroup);
  CHECK(u.uid == 0);
  CHECK(u.gid == 1000);
}

TEST_CASE("user_db: unknown names and bad input are clear errors") {
  CHECK_THROWS_WITH_AS(resolve_user("ghost", kPasswd, kGroup), doctest::Contains("unable to find user ghost"), Error);
  CHECK_THROWS_WITH_AS(resolve_user("app:ghosts", kPasswd, kGroup), doctest::Contains("unable to find group ghosts"),
                       Error);
  CHECK_THROWS_AS(resolve_user("app:", kPasswd, kGroup), Error);
  CHECK_THROWS_AS(resolve_user("bad", kPasswd, kGroup), Error);  // malformed line skipped
  CHECK(resolve_user("0", "", "").uid == 0);
}

TEST_CASE("user_db: files are read inside the rootfs, symlinks contained") {
  cbuild::TempDir tmp;
  cbuild::test::write_text(tmp.path() / "host_passwd", "evil:x:0:0::/:/bin/sh\n");
  std::filesystem::create_directories(tmp.path() / "root/etc");
  std::filesystem::create_symlink(tmp.path() / "host_passwd", tmp.path() / "root/etc/passwd");
  // The absolute link resolves inside the root, where nothing exists: no passwd at all.
  CHECK_THROWS_WITH_AS(resolve_user_in_rootfs("evil", tmp.path() / "root"), doctest::Contains("unable to find user"),
                       Error);
  CHECK(resolve_user_in_rootfs("", tmp.path() / "root").uid == 0);
}
