#include "overlay/active_mount.h"

#include <filesystem>

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild::overlay;
using cbuild::TempDir;
using cbuild::test::has_mounts_under;
using cbuild::test::read_text;
using cbuild::test::write_text;

TEST_CASE("active_mount: overlay of two lowers, writes go to upper, unmounted after [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  write_text(tmp.path() / "l1" / "a", "1");
  write_text(tmp.path() / "l1" / "b", "1");
  write_text(tmp.path() / "l2" / "a", "2");
  fs::create_directories(tmp.path() / "up");
  fs::create_directories(tmp.path() / "work");
  MountSpec spec{.lowers = {(tmp.path() / "l2").string(), (tmp.path() / "l1").string()},
                 .upper = (tmp.path() / "up").string(), .work = (tmp.path() / "work").string()};
  {
    ActiveMount m(spec, tmp.path() / "merged");
    CHECK(has_mounts_under(tmp.path()));
    CHECK(read_text(tmp.path() / "merged" / "a") == "2");
    CHECK(read_text(tmp.path() / "merged" / "b") == "1");
    write_text(tmp.path() / "merged" / "c", "new");
    fs::remove(tmp.path() / "merged" / "b");
  }
  CHECK_FALSE(has_mounts_under(tmp.path()));
  CHECK_FALSE(fs::exists(tmp.path() / "merged"));
  CHECK(read_text(tmp.path() / "up" / "c") == "new");
  CHECK(fs::exists(tmp.path() / "l1" / "b"));
  CHECK(fs::is_character_file(fs::symlink_status(tmp.path() / "up" / "b")));
}

TEST_CASE("active_mount: 150 lowers mount through lowerdir+ [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  MountSpec spec;
  for (int i = 0; i < 150; ++i) {
    auto d = tmp.path() / ("layer-with-a-long-name-to-overflow-the-page-" + std::to_string(i));
    write_text(d / ("f" + std::to_string(i)), std::to_string(i));
    write_text(d / "top", std::to_string(i));
    spec.lowers.insert(spec.lowers.begin(), d.string());
  }
  REQUIRE_FALSE(spec.fits_legacy());
  {
    ActiveMount m(spec, tmp.path() / "merged");
    CHECK(read_text(tmp.path() / "merged" / "top") == "149");
    CHECK(read_text(tmp.path() / "merged" / "f0") == "0");
    CHECK(read_text(tmp.path() / "merged" / "f77") == "77");
  }
  CHECK_FALSE(has_mounts_under(tmp.path()));
}

TEST_CASE("active_mount: a failing mount leaves no directory and no mount [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  MountSpec spec{.lowers = {(tmp.path() / "missing").string()}};
  CHECK_THROWS_AS(ActiveMount(spec, tmp.path() / "merged"), cbuild::Error);
  CHECK_FALSE(fs::exists(tmp.path() / "merged"));
  CHECK_FALSE(has_mounts_under(tmp.path()));
}
