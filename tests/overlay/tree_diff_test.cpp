// The chroot level's tree diff (overlay/tree_diff.h): separate_hard_links() gives each linked
// name an inode of its own with everything else kept, so a later write changes one name only;
// and the diff keeps only the xattrs a layer carries (layer_xattrs.h).
#include "overlay/tree_diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using cbuild::TempDir;
using namespace cbuild::overlay;

namespace {

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st;
}

std::string xattr(const fs::path& p, const char* key) {
  char buf[64];
  ssize_t n = ::lgetxattr(p.c_str(), key, buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace

TEST_CASE("tree diff: separate_hard_links gives every linked name its own inode, metadata kept") {
  REQUIRE_ROOT();
  TempDir t;
  const fs::path r = t.path();
  fs::create_directories(r / "d");
  std::ofstream(r / "d/a") << "data";
  REQUIRE(::chown((r / "d/a").c_str(), 7, 8) == 0);
  REQUIRE(::chmod((r / "d/a").c_str(), 04750) == 0);
  const char cap[20] = {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  REQUIRE(::setxattr((r / "d/a").c_str(), "security.capability", cap, sizeof cap, 0) == 0);
  REQUIRE(::setxattr((r / "d/a").c_str(), "user.note", "n", 1, 0) == 0);
  struct timespec ts[2] = {{1000, 5}, {2000, 7}};
  REQUIRE(::utimensat(AT_FDCWD, (r / "d/a").c_str(), ts, 0) == 0);
  fs::create_hard_link(r / "d/a", r / "d/b");
  fs::create_hard_link(r / "d/a", r / "e");
  fs::create_symlink("d/a", r / "s");
  REQUIRE(::link((r / "s").c_str(), (r / "s2").c_str()) == 0);
  REQUIRE(::mkfifo((r / "f").c_str(), 0640) == 0);
  REQUIRE(::link((r / "f").c_str(), (r / "f2").c_str()) == 0);
  fs::create_directories(r / "skip");
  fs::create_hard_link(r / "d/a", r / "skip/x");
  // As a copy-up leaves them: a later step's diff emits a parent with these times.
  struct timespec dir_ts[2] = {{3000, 11}, {4000, 13}};
  REQUIRE(::utimensat(AT_FDCWD, (r / "d").c_str(), dir_ts, 0) == 0);
  REQUIRE(::utimensat(AT_FDCWD, r.c_str(), dir_ts, 0) == 0);

  CHECK(separate_hard_links(r, {"skip"}) == 4);  // d/b (d/a keeps the inode), e, s2, f2
  for (const fs::path& dir : {r / "d", r}) {
    CAPTURE(dir);
    CHECK(lstat_of(dir).st_mtim.tv_sec == 4000);
    CHECK(lstat_of(dir).st_mtim.tv_nsec == 13);
  }

  const struct stat a = lstat_of(r / "d/a");
  for (const char* name : {"d/b", "e"}) {
    CAPTURE(name);
    const struct stat st = lstat_of(r / name);
    CHECK(st.st_ino != a.st_ino);
    CHECK(st.st_nlink == 1);
    CHECK(st.st_mode == a.st_mode);
    CHECK(st.st_uid == 7);
    CHECK(st.st_gid == 8);
    CHECK(st.st_mtim.tv_sec == 2000);
    CHECK(st.st_mtim.tv_nsec == 7);
    CHECK(cbuild::read_file(r / name) == "data");
    CHECK(xattr(r / name, "security.capability") == std::string(cap, sizeof cap));
    CHECK(xattr(r / name, "user.note") == "n");
  }
  CHECK(a.st_nlink == 2);  // d/a and the excluded skip/x, left alone
  CHECK(lstat_of(r / "skip/x").st_ino == a.st_ino);
  CHECK(fs::read_symlink(r / "s2") == "d/a");
  CHECK(lstat_of(r / "s2").st_ino != lstat_of(r / "s").st_ino);
  CHECK(S_ISFIFO(lstat_of(r / "f2").st_mode));
  CHECK((lstat_of(r / "f2").st_mode & 07777) == 0640);
  CHECK(lstat_of(r / "f2").st_ino != lstat_of(r / "f").st_ino);
  CHECK(separate_hard_links(r, {"skip"}) == 0);

  // A change through one name now changes that name alone, and the diff shows only it.
  TreeState before = record_tree(r, {"skip"});
  REQUIRE(::chmod((r / "d/a").c_str(), 0750) == 0);  // keeps the capability
  std::ofstream(r / "e", std::ios::app) << "x";        // a write clears it (the kernel)
  std::vector<std::string> seen;
  walk_tree_diff(r, before, DiffOptions{.exclude = {"skip"}}, [&](const cbuild::oci::TarEntry& e, int) {
    std::string line = e.path;
    for (const auto& [k, v] : e.xattrs) line += " " + k;
    seen.push_back(line);
  });
  std::string got;
  for (const auto& l : seen) got += l + "\n";
  CHECK(got == "d\nd/a security.capability\ne\n");  // user.note stays off the layer
  CHECK(cbuild::read_file(r / "d/b") == "data");
}
