#include "overlay/user_namespace.h"

#include <cerrno>

#include <doctest/doctest.h>

using namespace cbuild::overlay;

TEST_CASE("user_namespace: subordinate ranges by name or uid, in file order") {
  const char* text =
      "# comment\n"
      "alice:100000:65536\n"
      "bob:165536:65536\n"
      "1000:300000:10\n"
      "alice:400000:5\r\n"
      "alice:bad:5\n"
      "alice:500000:0\n"
      "alice:600000\n"
      "\n"
      "alicex:700000:9\n";
  auto r = parse_subordinate_ids(text, "alice", 1000);
  REQUIRE(r.size() == 3);
  CHECK(r[0].start == 100000);
  CHECK(r[0].count == 65536);
  CHECK(r[1].start == 300000);
  CHECK(r[1].count == 10);
  CHECK(r[2].start == 400000);
  CHECK(r[2].count == 5);
  // No name (a uid without a passwd entry): only numeric lines.
  auto by_uid = parse_subordinate_ids(text, "", 1000);
  REQUIRE(by_uid.size() == 1);
  CHECK(by_uid[0].start == 300000);
  CHECK(parse_subordinate_ids(text, "carol", 42).empty());
}

TEST_CASE("user_namespace: the id counts cover 0 and every range") {
  IdMapping m;
  CHECK(m.uid_count() == 1);
  m.uid_ranges = {{100000, 65536}, {300000, 10}};
  m.gid_ranges = {{100000, 65536}};
  CHECK(m.uid_count() == 65547);
  CHECK(m.gid_count() == 65537);
}

TEST_CASE("user_namespace: the overlay xattrs follow the process's user namespace") {
  if (in_initial_user_namespace()) {
    CHECK(overlay_xattr_namespace() == XattrNamespace::Trusted);
    CHECK(gid_is_mapped(5));
    CHECK_FALSE(rootless_limit_message("mknod", EPERM, "dev/console"));
  } else {  // the tests themselves run inside a container's user namespace
    CHECK(overlay_xattr_namespace() == XattrNamespace::User);
    CHECK(rootless_limit_message("mknod", EPERM, "dev/console"));
  }
  CHECK_FALSE(current_id_mapping());  // only enter_user_namespace() sets it
  CHECK_FALSE(rootless_limit_message("mknod", ENOSPC, "dev/console"));
}
