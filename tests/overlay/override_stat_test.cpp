// The override-stat attribute of rootless placeholders: its text format, how a placeholder's
// later changes win over the recorded values, the differ reading placeholders as what they
// stand for, and the refusal of layers that carry cbuild's reserved attributes.
#include "overlay/override_stat.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/applier.h"
#include "overlay/differ.h"
#include "overlay/sys/syscalls.h"
#include "tests/overlay/layer_test_util.h"
#include "tests/overlay/overlay_test_util.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::overlay;

namespace {

OverrideStat char_device() {
  return OverrideStat{.mode = S_IFCHR | 0620,
                      .uid = 70000,
                      .gid = 5,
                      .dev_major = 4,
                      .dev_minor = 1,
                      .placeholder_mode = S_IFREG | 0620,
                      .placeholder_uid = 0,
                      .placeholder_gid = 5};
}

std::vector<oci::TarEntry> diff_of(const fs::path& upper) {
  std::vector<oci::TarEntry> out;
  walk_diff(upper, DiffOptions{}, [&](const oci::TarEntry& e, int) { out.push_back(e); });
  return out;
}

}  // namespace

TEST_CASE("override stat: the text format round-trips and rejects anything else") {
  OverrideStat o = char_device();
  std::string text = format_override_stat(o);
  CHECK(text == "type=char mode=0620 uid=70000 gid=5 rdev=4:1 placeholder=file:0620:0:5");
  auto back = parse_override_stat(text);
  REQUIRE(back);
  CHECK(back->mode == o.mode);
  CHECK(back->uid == 70000);
  CHECK(back->dev_minor == 1);
  CHECK(back->placeholder_mode == (S_IFREG | 0620));

  OverrideStat dir{.mode = S_IFDIR | 04750, .uid = 4294967294u, .gid = 4294967294u,
                   .placeholder_mode = S_IFDIR | 04750, .placeholder_uid = 65536, .placeholder_gid = 65536};
  auto d = parse_override_stat(format_override_stat(dir));
  REQUIRE(d);
  CHECK(d->uid == 4294967294u);
  CHECK(d->mode == (S_IFDIR | 04750));

  for (const char* bad : {"", "type=char", "type=sock mode=0620 uid=1 gid=1 rdev=0:0 placeholder=file:0620:0:0",
                          "type=char mode=620 uid=1 gid=1 rdev=0:0 placeholder=file:0620:0:0",
                          "type=char mode=0620 uid=-1 gid=1 rdev=0:0 placeholder=file:0620:0:0",
                          "type=char mode=0620 uid=4294967296 gid=1 rdev=0:0 placeholder=file:0620:0:0",
                          "type=char mode=0620 uid=1 gid=1 rdev=0:0 placeholder=char:0620:0:0",
                          "type=dir mode=0755 uid=1 gid=1 rdev=0:0 placeholder=file:0755:0:0",
                          "type=char mode=0620 uid=1 gid=1 rdev=0:0 placeholder=file:0620:0:0 extra=1",
                          "mode=0620 type=char uid=1 gid=1 rdev=0:0 placeholder=file:0620:0:0"}) {
    CHECK_MESSAGE(!parse_override_stat(bad), bad);
  }
  CHECK_THROWS_AS(parse_override_stat_or_throw("junk", "dev/x"), Error);
}

TEST_CASE("override stat: untouched fields take the recorded values, changed ones keep the change") {
  OverrideStat o = char_device();
  struct stat st {};
  st.st_mode = S_IFREG | 0620;
  st.st_uid = 0;
  st.st_gid = 5;
  struct stat same = apply_override(st, o, "dev/c");
  CHECK(S_ISCHR(same.st_mode));
  CHECK((same.st_mode & 07777) == 0620);
  CHECK(same.st_uid == 70000);
  CHECK(same.st_rdev == makedev(4, 1));

  // chown 1000 and chmod 0600 by a RUN: as a root build's chown/chmod of the node would.
  st.st_uid = 1000;
  st.st_mode = S_IFREG | 0600;
  struct stat changed = apply_override(st, o, "dev/c");
  CHECK(S_ISCHR(changed.st_mode));
  CHECK(changed.st_uid == 1000);
  CHECK(changed.st_gid == 5);
  CHECK((changed.st_mode & 07777) == 0600);

  // Something wrote into the placeholder of a device: that cannot be in a layer.
  st.st_size = 3;
  CHECK_THROWS_AS(apply_override(st, o, "dev/c"), Error);

  // A placeholder of another type than recorded (replaced by a directory) is left alone.
  struct stat dir {};
  dir.st_mode = S_IFDIR | 0755;
  CHECK(S_ISDIR(apply_override(dir, o, "dev/c").st_mode));
}

TEST_CASE("override stat: the differ writes a placeholder as the entry it stands for") {
  TempDir tmp;
  fs::path upper = tmp.path() / "upper";
  fs::create_directories(upper / "dev");
  test::write_text(upper / "dev/c", "");
  REQUIRE(::chmod((upper / "dev/c").c_str(), 0620) == 0);
  struct stat st {};
  REQUIRE(::lstat((upper / "dev/c").c_str(), &st) == 0);
  OverrideStat o = char_device();
  o.placeholder_mode = st.st_mode;
  o.placeholder_uid = st.st_uid;
  o.placeholder_gid = st.st_gid;
  sys::set_xattr(AT_FDCWD, (upper / "dev/c").string(), std::string(kOverrideStatXattr), format_override_stat(o), "c");
  sys::set_xattr(AT_FDCWD, (upper / "dev/c").string(), "user.cbuild.other", "x", "c");
  sys::set_xattr(AT_FDCWD, (upper / "dev/c").string(), "user.note", "kept", "c");

  auto entries = diff_of(upper);
  REQUIRE(entries.size() == 2);
  const oci::TarEntry& c = entries[1];
  CHECK(c.path == "dev/c");
  CHECK(c.type == oci::TarType::Char);
  CHECK(c.dev_major == 4);
  CHECK(c.dev_minor == 1);
  CHECK(c.uid == 70000);
  CHECK(c.gid == 5);
  CHECK(c.mode == 0620);
  CHECK(c.size == 0);
  // cbuild's own attributes never reach a layer (nor do other user.* ones: layer_xattrs.h).
  CHECK(c.xattrs.empty());

  // A hardlink to the placeholder carries the same metadata, as root's differ gives a node.
  REQUIRE(::link((upper / "dev/c").c_str(), (upper / "dev/d").c_str()) == 0);
  entries = diff_of(upper);
  REQUIRE(entries.size() == 3);
  CHECK(entries[2].type == oci::TarType::Hardlink);
  CHECK(entries[2].link_target == "dev/c");
  CHECK(entries[2].uid == 70000);
}

TEST_CASE("override stat: a layer carrying cbuild's reserved attributes is refused") {
  TempDir tmp;
  auto item = test::file_item("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  item.entry.xattrs = {{std::string(kOverrideStatXattr), format_override_stat(char_device())}};
  auto r = test::reader_for(test::make_tar({test::dir_item("etc"), item}));
  try {
    apply_layer(*r, tmp.path(), ApplyOptions{.mode = ApplyMode::Flatten, .same_owner = false});
    FAIL("applied a layer that forges stat");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::InvalidArgument);
    CHECK(std::string(e.what()).find("etc/passwd") != std::string::npos);
    CHECK(std::string(e.what()).find("reserved for cbuild") != std::string::npos);
  }
}
