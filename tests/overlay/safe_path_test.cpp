#include "overlay/safe_path.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/sys/syscalls.h"
#include "tests/overlay/overlay_test_util.h"

namespace fs = std::filesystem;
using cbuild::Error;
using cbuild::TempDir;
using cbuild::UniqueFd;
using namespace cbuild::overlay;
using cbuild::test::read_text;
using cbuild::test::write_text;

namespace {

// Both resolvers must give the same answers; CBUILD_NO_OPENAT2 is read once per process, so
// the fallback is exercised by re-running this binary (see the last test case) with it set.
struct Fixture {
  TempDir tmp;
  fs::path root = tmp.path() / "root";
  fs::path outside = tmp.path() / "outside";
  UniqueFd root_fd;
  Fixture() {
    fs::create_directories(root / "etc");
    fs::create_directories(outside);
    write_text(outside / "secret", "host");
    write_text(root / "etc" / "passwd", "inside");
    fs::create_directory_symlink("/etc", root / "abs");           // absolute → ROOT/etc
    fs::create_directory_symlink("../../../..", root / "up");      // climbs → ROOT
    fs::create_symlink(outside / "secret", root / "to_outside");   // absolute host path
    fs::create_symlink("/proc/self/root/etc/passwd", root / "magic");
    root_fd = UniqueFd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  std::string read_in_root(const std::string& p) {
    UniqueFd fd = open_in_root(root_fd.get(), p, O_RDONLY);
    char buf[64] = {};
    auto n = ::read(fd.get(), buf, sizeof buf - 1);
    return std::string(buf, n > 0 ? n : 0);
  }
};

}  // namespace

TEST_CASE("clean_path contains .. lexically at the root") {
  CHECK(clean_path("a/../../b") == "b");
  CHECK(clean_path("/x//y/.") == "x/y");
  CHECK(clean_path("../../..") == "");
  CHECK(clean_path("./") == "");
  CHECK(clean_path("a/b/../c") == "a/c");
}

TEST_CASE_FIXTURE(Fixture, "open_in_root resolves .. and symlinks inside the root") {
  CHECK(read_in_root("etc/passwd") == "inside");
  CHECK(read_in_root("../../etc/passwd") == "inside");
  CHECK(read_in_root("/etc/passwd") == "inside");
  CHECK(read_in_root("abs/passwd") == "inside");
  CHECK(read_in_root("up/etc/passwd") == "inside");
  CHECK(read_in_root("up/up/../etc/../etc/passwd") == "inside");
  // An absolute symlink to a host file resolves inside the root, where it does not exist.
  CHECK_THROWS_AS(read_in_root("to_outside"), Error);
  // Magic links are refused (openat2) or resolve inside the root (walk: /proc is absent).
  CHECK_THROWS_AS(read_in_root("magic"), Error);
  CHECK(read_text(outside / "secret") == "host");
}

TEST_CASE_FIXTURE(Fixture, "O_NOFOLLOW leaves the last symlink alone") {
  UniqueFd fd = open_in_root(root_fd.get(), "to_outside", O_PATH | O_NOFOLLOW);
  struct stat st {};
  REQUIRE(::fstat(fd.get(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
}

TEST_CASE_FIXTURE(Fixture, "mkdir_in_root creates through symlinks inside the root only") {
  fs::create_directory_symlink(outside, root / "evil");  // absolute host dir
  UniqueFd d = mkdir_in_root(root_fd.get(), "evil/sub/dir");
  CHECK(d.valid());
  CHECK(fs::is_directory(root / outside.relative_path() / "sub" / "dir"));
  CHECK(!fs::exists(outside / "sub"));
  // A dangling relative symlink that climbs: created inside.
  fs::create_directory_symlink("../../../made", root / "dangling");
  mkdir_in_root(root_fd.get(), "dangling/x");
  CHECK(fs::is_directory(root / "made" / "x"));
  CHECK(!fs::exists(tmp.path() / "made"));
  // A regular file on the way is ENOTDIR.
  CHECK_THROWS_AS(mkdir_in_root(root_fd.get(), "etc/passwd/x"), Error);
}

TEST_CASE_FIXTURE(Fixture, "open_parent_in_root never follows the leaf and refuses the root") {
  auto pl = open_parent_in_root(root_fd.get(), "../abs/passwd", false);
  CHECK(pl.leaf == "passwd");
  CHECK(pl.path == "abs/passwd");
  auto st = cbuild::overlay::sys::fstatat(pl.dir.get(), pl.leaf, AT_SYMLINK_NOFOLLOW, pl.path);
  CHECK(S_ISREG(st.st_mode));
  CHECK_THROWS_AS(open_parent_in_root(root_fd.get(), "a/..", false), Error);
  CHECK_THROWS_AS(open_parent_in_root(root_fd.get(), "missing/x", false), Error);
}

TEST_CASE_FIXTURE(Fixture, "resolve_in_root follows every link inside the root, the last and dangling ones too") {
  fs::create_symlink("/etc/passwd", root / "etc" / "link");
  fs::create_symlink("../nowhere/deeper", root / "etc" / "dangling");
  fs::create_symlink("/../../gone", root / "climb");
  CHECK(resolve_in_root(root_fd.get(), "/etc/link") == "etc/passwd");
  CHECK(resolve_in_root(root_fd.get(), "abs/link") == "etc/passwd");
  CHECK(resolve_in_root(root_fd.get(), "up/up/abs/") == "etc");
  CHECK(resolve_in_root(root_fd.get(), "etc/dangling/x") == "nowhere/deeper/x");
  CHECK(resolve_in_root(root_fd.get(), "climb/a/../b") == "gone/b");
  CHECK(resolve_in_root(root_fd.get(), "to_outside") == outside.relative_path().string() + "/secret");
  CHECK(resolve_in_root(root_fd.get(), "etc/passwd/x") == "etc/passwd/x");  // a file on the way: kept
  CHECK(resolve_in_root(root_fd.get(), "..") == "");
  fs::create_symlink("loop2", root / "loop1");
  fs::create_symlink("loop1", root / "loop2");
  CHECK_THROWS_AS(resolve_in_root(root_fd.get(), "loop1/x"), Error);
}

TEST_CASE("symlink loops end in ELOOP, not a hang") {
  TempDir tmp;
  fs::create_symlink("b", tmp.path() / "a");
  fs::create_symlink("a", tmp.path() / "b");
  UniqueFd rfd(::open(tmp.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  try {
    open_in_root(rfd.get(), "a/x", O_RDONLY);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.sys_errno() == ELOOP);
  }
}

TEST_CASE("the fallback walk passes the same tests (CBUILD_NO_OPENAT2=1)") {
  if (std::getenv("CBUILD_NO_OPENAT2")) {
    CHECK_FALSE(cbuild::overlay::sys::openat2_enabled());
    return;
  }
  // Re-run this binary's safe_path and applier tests with the fallback forced.
  std::string self = fs::read_symlink("/proc/self/exe");
  std::string cmd = "CBUILD_NO_OPENAT2=1 '" + self +
                    "' --test-case='*root*,*symlink*,*hostile*,*fallback*' --force-colors=0 >/dev/null 2>&1";
  CHECK(std::system(cmd.c_str()) == 0);
}
