// The override-stat attribute of rootless placeholders: its text format, how a placeholder's
// later changes win over the recorded values, the differ reading placeholders as what they
// stand for, the set-id bits a rootless write cleared (restored, and renewed at commit), and
// the refusal of layers that carry cbuild's reserved attributes.
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

namespace {

OverrideStat setuid_file() {
  return OverrideStat{.mode = S_IFREG | 04755,
                      .uid = 0,
                      .gid = 0,
                      .placeholder_mode = S_IFREG | 04755,
                      .placeholder_uid = 0,
                      .placeholder_gid = 0,
                      .mtime = FileTime{.sec = 1700000000, .nsec = 5}};
}

struct stat file_stat(mode_t perm, std::int64_t mtime_sec, long mtime_nsec) {
  struct stat st {};
  st.st_mode = S_IFREG | perm;
  st.st_mtim.tv_sec = mtime_sec;
  st.st_mtim.tv_nsec = mtime_nsec;
  return st;
}

}  // namespace

TEST_CASE("override stat: a set-id file's record keeps its mtime; six-field records still read") {
  OverrideStat o = setuid_file();
  std::string text = format_override_stat(o);
  CHECK(text == "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=1700000000.000000005");
  auto back = parse_override_stat(text);
  REQUIRE(back);
  REQUIRE(back->mtime);
  CHECK(*back->mtime == FileTime{.sec = 1700000000, .nsec = 5});
  auto old = parse_override_stat("type=file mode=4755 uid=70000 gid=0 rdev=0:0 placeholder=file:4755:65535:0");
  REQUIRE(old);
  CHECK_FALSE(old->mtime);
  o.mtime = FileTime{.sec = -3, .nsec = 999999999};
  back = parse_override_stat(format_override_stat(o));
  REQUIRE(back);
  CHECK(back->mtime->sec == -3);

  for (const char* bad : {
           // Only a setuid/setgid regular file has an mtime.
           "type=file mode=0755 uid=0 gid=0 rdev=0:0 placeholder=file:0755:0:0 mtime=1.000000000",
           "type=dir mode=4755 uid=0 gid=0 rdev=0:0 placeholder=dir:4755:0:0 mtime=1.000000000",
           "type=char mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=1.000000000",
           "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=1.5",
           "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=1",
           "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=1.1000000000",
           "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=x.000000000",
           "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=",
           "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=1.000000000 x=1",
           "type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 time=1.000000000"}) {
    CHECK_MESSAGE(!parse_override_stat(bad), bad);
  }
}

TEST_CASE("override stat: set-id bits a write cleared come back, a chmod's removal stays") {
  OverrideStat o = setuid_file();
  // Written: the mtime moved and only the setuid bit is gone.
  struct stat written = file_stat(0755, 1700000100, 0);
  CHECK(restores_setid(written, o));
  CHECK((apply_override(written, o, "bin/su").st_mode & 07777) == 04755);
  // chmod u-s alone leaves the mtime.
  struct stat chmodded = file_stat(0755, 1700000000, 5);
  CHECK_FALSE(restores_setid(chmodded, o));
  CHECK((apply_override(chmodded, o, "bin/su").st_mode & 07777) == 0755);
  // Other bits changed as well (chmod 0700 besides the write): a chmod, kept.
  struct stat other = file_stat(0700, 1700000100, 0);
  CHECK_FALSE(restores_setid(other, o));
  CHECK((apply_override(other, o, "bin/su").st_mode & 07777) == 0700);
  // Unchanged, and a record without mtime: nothing to restore.
  CHECK_FALSE(restores_setid(file_stat(04755, 1700000100, 0), o));
  OverrideStat old = o;
  old.mtime.reset();
  CHECK((apply_override(written, old, "bin/su").st_mode & 07777) == 0755);

  // setgid: cleared by a write only with group execute; without it only a chmod removes it.
  OverrideStat g = o;
  g.mode = g.placeholder_mode = S_IFREG | 02755;
  CHECK((apply_override(written, g, "bin/wall").st_mode & 07777) == 02755);
  g.mode = g.placeholder_mode = S_IFREG | 02745;
  CHECK_FALSE(restores_setid(file_stat(0745, 1700000100, 0), g));
  g.mode = g.placeholder_mode = S_IFREG | 06755;
  CHECK((apply_override(written, g, "bin/both").st_mode & 07777) == 06755);

  // A placeholder owned outside the mapping: the owner and the bit both come back.
  OverrideStat far = o;
  far.uid = 70000;
  far.placeholder_uid = 65535;
  struct stat far_written = written;
  far_written.st_uid = 65535;
  struct stat out = apply_override(far_written, far, "bin/far");
  CHECK(out.st_uid == 70000);
  CHECK((out.st_mode & 07777) == 04755);
}

TEST_CASE("override stat: the differ restores a written set-id file and warns; commit renews the record") {
  TempDir tmp;
  fs::path upper = tmp.path() / "upper";
  fs::create_directories(upper / "bin");
  test::write_text(upper / "bin/su", "su\nmore\n");
  test::write_text(upper / "bin/hardened", "h\n");
  REQUIRE(::chmod((upper / "bin/su").c_str(), 0755) == 0);
  REQUIRE(::chmod((upper / "bin/hardened").c_str(), 0755) == 0);
  const struct timespec then[2] = {{.tv_sec = 1700000000, .tv_nsec = 0}, {.tv_sec = 1700000000, .tv_nsec = 0}};
  REQUIRE(::utimensat(AT_FDCWD, (upper / "bin/hardened").c_str(), then, 0) == 0);
  OverrideStat o = setuid_file();
  o.mtime = FileTime{.sec = 1700000000, .nsec = 0};
  for (const char* f : {"bin/su", "bin/hardened"}) {
    struct stat st {};
    REQUIRE(::lstat((upper / f).c_str(), &st) == 0);
    o.placeholder_uid = o.uid = st.st_uid;
    o.placeholder_gid = o.gid = st.st_gid;
    sys::set_xattr(AT_FDCWD, (upper / f).string(), std::string(kOverrideStatXattr), format_override_stat(o), f);
  }

  std::vector<std::string> warnings;
  DiffOptions opts{.xattr_namespace = XattrNamespace::User, .warn = [&](const std::string& w) { warnings.push_back(w); }};
  std::vector<oci::TarEntry> entries;
  walk_diff(upper, opts, [&](const oci::TarEntry& e, int) { entries.push_back(e); });
  REQUIRE(entries.size() == 3);
  CHECK(entries[1].path == "bin/hardened");
  CHECK(entries[1].mode == 0755);
  CHECK(entries[2].path == "bin/su");
  CHECK(entries[2].mode == 04755);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("bin/su") != std::string::npos);
  CHECK(warnings[0].find("bin/hardened") == std::string::npos);
  CHECK(warnings[0].find("setuid/setgid") != std::string::npos);

  // The upper becoming a snapshot holds what the layer holds, and a later read of it (a lower
  // of the next step) is exact: no second restore, no warning.
  strip_for_commit(upper, opts);
  struct stat st {};
  REQUIRE(::lstat((upper / "bin/su").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 04755);
  auto v = sys::get_xattr(AT_FDCWD, (upper / "bin/su").string(), std::string(kOverrideStatXattr), "su");
  REQUIRE(v);
  auto renewed = parse_override_stat(*v);
  REQUIRE(renewed);
  REQUIRE(renewed->mtime);
  CHECK(renewed->mtime->sec == st.st_mtim.tv_sec);
  CHECK(renewed->mtime->nsec == static_cast<std::uint32_t>(st.st_mtim.tv_nsec));
  // The hardened file keeps no mtime (it is no longer set-id): a later write restores nothing.
  v = sys::get_xattr(AT_FDCWD, (upper / "bin/hardened").string(), std::string(kOverrideStatXattr), "h");
  REQUIRE(v);
  REQUIRE(parse_override_stat(*v));
  CHECK_FALSE(parse_override_stat(*v)->mtime);
  warnings.clear();
  entries.clear();
  walk_diff(upper, opts, [&](const oci::TarEntry& e, int) { entries.push_back(e); });
  CHECK(warnings.empty());
  CHECK(entries[1].mode == 0755);
  CHECK(entries[2].mode == 04755);

  // A set-id file a step created gets a record at commit, so a later write is seen.
  test::write_text(upper / "bin/new", "new\n");
  REQUIRE(::chmod((upper / "bin/new").c_str(), 02755) == 0);
  strip_for_commit(upper, opts);
  v = sys::get_xattr(AT_FDCWD, (upper / "bin/new").string(), std::string(kOverrideStatXattr), "new");
  REQUIRE(v);
  auto made = parse_override_stat(*v);
  REQUIRE(made);
  CHECK(made->mode == (S_IFREG | 02755));
  CHECK(made->mtime);
}
