#include "overlay/applier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/safe_path.h"
#include "overlay/sys/syscalls.h"
#include "overlay/whiteout.h"
#include "tests/overlay/layer_test_util.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using cbuild::Error;
using cbuild::TempDir;
using cbuild::UniqueFd;
using namespace cbuild::overlay;
using namespace cbuild::test;

namespace {

ApplyStats apply_items(const fs::path& root, const std::vector<LayerItem>& items, ApplyOptions opt = {}) {
  auto r = reader_for(make_tar(items));
  return apply_layer(*r, root, opt);
}

// ---- the hostile-layer folder -------------------------------------------------------------

// Splits a line into words; "" is an empty word. No other quoting is needed by the cases.
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w == "\"\"" ? std::string() : w);
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

struct HostileCase {
  ApplyMode mode = ApplyMode::Overlay;
  std::vector<std::vector<LayerItem>> layers;
  std::string expect_error;
  std::vector<std::vector<std::string>> checks;
};

HostileCase parse_case(const fs::path& file, const std::string& host) {
  HostileCase c;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto w = words(replace_all(line, "@HOST@", host));
    if (w.empty()) continue;
    const std::string& op = w[0];
    auto arg = [&](std::size_t i) { return i < w.size() ? w[i] : std::string(); };
    // A tar reader yields "/abs/x" as "abs/x" (tar_entry.h), so that is what the layer holds.
    if (w.size() > 1 && op != "content" && op != "exists" && op != "absent" && op != "whiteout" && op != "opaque")
      while (!w[1].empty() && w[1][0] == '/') w[1].erase(0, 1);
    if (op == "layer") c.layers.emplace_back();
    else if (op == "mode") c.mode = arg(1) == "flatten" ? ApplyMode::Flatten : ApplyMode::Overlay;
    else if (op == "dir") c.layers.back().push_back(dir_item(arg(1)));
    else if (op == "file") c.layers.back().push_back(file_item(arg(1), arg(2)));
    else if (op == "symlink") c.layers.back().push_back(link_item(arg(1), arg(2)));
    else if (op == "hardlink") c.layers.back().push_back(link_item(arg(1), arg(2), true));
    else if (op == "expect-error") c.expect_error = line.substr(line.find(' ') + 1);
    else c.checks.push_back(w);
  }
  return c;
}

// Runs one check inside the root; returns "" when it holds, else what went wrong.
std::string run_check(int root_fd, const std::vector<std::string>& w) {
  const std::string& op = w[0];
  const std::string path = w.size() > 1 ? w[1] : "";
  try {
    if (op == "content") {
      UniqueFd fd = open_in_root(root_fd, path, O_RDONLY);
      char buf[256];
      auto n = ::read(fd.get(), buf, sizeof buf);
      std::string got(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
      std::string want = w.size() > 2 ? w[2] : "";
      return got == want ? "" : "content of " + path + " is '" + got + "', want '" + want + "'";
    }
    ParentAndLeaf pl = open_parent_in_root(root_fd, path, false);
    auto st = sys::try_lstatat(pl.dir.get(), pl.leaf, path);
    if (op == "exists") return st ? "" : path + " does not exist";
    if (op == "absent") return st ? path + " exists" : "";
    if (op == "whiteout") return st && is_overlay_whiteout(*st) ? "" : path + " is not a whiteout";
    if (op == "opaque")
      return is_overlay_opaque(pl.dir.get(), pl.leaf, XattrNamespace::Trusted, path) ? "" : path + " is not opaque";
    return "unknown check " + op;
  } catch (const Error& e) {
    if (op == "absent" && e.sys_errno() == ENOENT) return "";
    return op + " " + path + ": " + e.what();
  }
}

void run_hostile_case(const fs::path& file) {
  TempDir tmp;
  fs::path root = tmp.path() / "root";
  fs::path host = tmp.path() / "host";
  fs::create_directories(root);
  fs::create_directories(host);
  write_text(host / "secret", "original");
  struct stat host_before {}, secret_before {};
  REQUIRE(::stat(host.c_str(), &host_before) == 0);
  REQUIRE(::stat((host / "secret").c_str(), &secret_before) == 0);
  HostileCase c = parse_case(file, host.string());
  REQUIRE_FALSE(c.layers.empty());

  ApplyOptions opt;
  opt.mode = c.mode;
  std::string error;
  for (std::size_t i = 0; i < c.layers.size(); ++i) {
    try {
      apply_items(root, c.layers[i], opt);
    } catch (const Error& e) {
      error = e.what();
      INFO("layer ", i, " failed: ", error);
      CHECK(i + 1 == c.layers.size());
      break;
    }
  }
  if (c.expect_error.empty()) {
    CHECK_MESSAGE(error.empty(), "unexpected error: ", error);
  } else {
    CHECK_MESSAGE(error.find(c.expect_error) != std::string::npos, "error '", error, "' lacks '",
                  c.expect_error, "'");
    // One line, naming what failed.
    CHECK(error.find('\n') == std::string::npos);
  }

  UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  for (const auto& check : c.checks) {
    std::string problem = run_check(root_fd.get(), check);
    CHECK_MESSAGE(problem.empty(), problem);
  }

  // The host half: the sentinel is untouched and nothing appeared next to the root.
  std::vector<std::string> host_names, tmp_names;
  for (const auto& d : fs::directory_iterator(host)) host_names.push_back(d.path().filename());
  for (const auto& d : fs::directory_iterator(tmp.path())) tmp_names.push_back(d.path().filename());
  std::sort(tmp_names.begin(), tmp_names.end());
  CHECK(host_names == std::vector<std::string>{"secret"});
  CHECK(read_text(host / "secret") == "original");
  struct stat hst {};
  REQUIRE(::lstat((host / "secret").c_str(), &hst) == 0);
  CHECK(S_ISREG(hst.st_mode));
  CHECK(hst.st_mode == secret_before.st_mode);
  CHECK(hst.st_uid == secret_before.st_uid);
  CHECK(hst.st_mtim.tv_sec == secret_before.st_mtim.tv_sec);
  REQUIRE(::stat(host.c_str(), &hst) == 0);
  CHECK(hst.st_mode == host_before.st_mode);
  CHECK(hst.st_uid == host_before.st_uid);
  CHECK(sys::get_xattr(AT_FDCWD, host.string(), opaque_xattr(XattrNamespace::Trusted), "host") == std::nullopt);
  CHECK(tmp_names == std::vector<std::string>{"host", "root"});
}

}  // namespace

TEST_CASE("hostile layers are contained or refused, the host untouched") {
  REQUIRE_ROOT();  // overlay whiteouts are 0/0 char devices, opaque marks trusted.* xattrs
  fs::path dir = fs::path(CBUILD_SOURCE_DIR) / "tests/overlay/hostile_layers";
  std::vector<fs::path> files;
  for (const auto& d : fs::directory_iterator(dir))
    if (d.path().extension() == ".layers") files.push_back(d.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 10);
  for (const auto& f : files) {
    SUBCASE(f.filename().c_str()) {
      INFO("case ", f.filename().string());
      run_hostile_case(f);
    }
  }
}

TEST_CASE("applier: file types, modes, owners, xattrs and mtimes") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path root = tmp.path();
  std::vector<LayerItem> items;
  items.push_back(dir_item("usr", 0755));
  items.back().entry.mtime_sec = 1000;
  items.push_back(dir_item("usr/bin", 0711));
  items.back().entry.mtime_sec = 2000;
  items.push_back(file_item("usr/bin/su", "su!", 04755));
  items.back().entry.uid = 12;
  items.back().entry.gid = 34;
  items.back().entry.mtime_sec = 3000;
  items.push_back(file_item("usr/bin/sg", "sg", 02711));
  items.push_back(dir_item("tmp", 01777));
  items.push_back(link_item("usr/bin/sh", "busybox"));
  items.back().entry.uid = 7;
  items.push_back(link_item("usr/bin/su2", "usr/bin/su", true));
  items.push_back(file_item("cap", "x"));
  items.back().entry.xattrs = {{"user.note", "hello"}, {"trusted.overlay.opaque", "y"}};
  LayerItem fifo = file_item("fifo", "");
  fifo.entry.type = cbuild::oci::TarType::Fifo;
  items.push_back(fifo);
  LayerItem null = file_item("null", "", 0666);
  null.entry.type = cbuild::oci::TarType::Char;
  null.entry.dev_major = 1;
  null.entry.dev_minor = 3;
  items.push_back(null);

  ApplyStats stats = apply_items(root, items);
  CHECK(stats.entries == items.size());
  CHECK(stats.bytes == 6);

  struct stat st {};
  REQUIRE(::lstat((root / "usr/bin/su").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 04755);
  CHECK(st.st_uid == 12);
  CHECK(st.st_gid == 34);
  CHECK(st.st_mtim.tv_sec == 3000);
  CHECK(st.st_nlink == 2);
  CHECK(read_text(root / "usr/bin/su2") == "su!");
  REQUIRE(::lstat((root / "usr/bin/sg").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 02711);
  REQUIRE(::lstat((root / "tmp").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 01777);
  REQUIRE(::lstat((root / "usr/bin").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0711);
  CHECK(st.st_mtim.tv_sec == 2000);  // set after its contents were written
  REQUIRE(::lstat((root / "usr").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == 1000);
  REQUIRE(::lstat((root / "usr/bin/sh").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(st.st_uid == 7);
  CHECK(fs::read_symlink(root / "usr/bin/sh") == "busybox");
  REQUIRE(::lstat((root / "fifo").c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  REQUIRE(::lstat((root / "null").c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK(st.st_rdev == makedev(1, 3));
  CHECK((st.st_mode & 0777) == 0666);
  // User xattrs kept; overlay-private ones from a layer dropped (they would fake opaque dirs).
  CHECK(sys::get_xattr(AT_FDCWD, (root / "cap").string(), "user.note", "cap") == std::optional<std::string>("hello"));
  CHECK(sys::get_xattr(AT_FDCWD, (root / "cap").string(), "trusted.overlay.opaque", "cap") == std::nullopt);
}

TEST_CASE("applier: overlay whiteouts and opaque dirs; flatten deletes") {
  REQUIRE_ROOT();
  std::vector<LayerItem> base = {dir_item("etc"), file_item("etc/a", "a"), file_item("etc/b", "b"),
                                 dir_item("var"), file_item("var/old", "o")};
  std::vector<LayerItem> top = {file_item("etc/.wh.a", ""), dir_item("var"), file_item("var/.wh..wh..opq", ""),
                                file_item("var/new", "n"), file_item(".wh..wh.plnk", "")};
  SUBCASE("overlay") {
    TempDir tmp;
    apply_items(tmp.path(), top);
    UniqueFd root(::open(tmp.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat st {};
    REQUIRE(::lstat((tmp.path() / "etc/a").c_str(), &st) == 0);
    CHECK(is_overlay_whiteout(st));
    CHECK(is_overlay_opaque(root.get(), "var", XattrNamespace::Trusted, "var"));
    CHECK(read_text(tmp.path() / "var/new") == "n");
    CHECK_FALSE(exists_nofollow(tmp.path() / ".wh..wh.plnk"));
    CHECK_FALSE(exists_nofollow(tmp.path() / "etc/.wh.a"));
  }
  SUBCASE("flatten") {
    TempDir tmp;
    ApplyOptions opt;
    opt.mode = ApplyMode::Flatten;
    apply_items(tmp.path(), base, opt);
    apply_items(tmp.path(), top, opt);
    CHECK_FALSE(exists_nofollow(tmp.path() / "etc/a"));
    CHECK(read_text(tmp.path() / "etc/b") == "b");
    CHECK_FALSE(exists_nofollow(tmp.path() / "var/old"));
    CHECK(read_text(tmp.path() / "var/new") == "n");
    CHECK_FALSE(exists_nofollow(tmp.path() / "etc/.wh.a"));
  }
}

TEST_CASE("applier: replacing entries across layers") {
  TempDir tmp;
  ApplyOptions opt;
  opt.mode = ApplyMode::Flatten;
  opt.same_owner = false;
  apply_items(tmp.path(), {dir_item("x"), file_item("x/f", "1"), file_item("y", "file"), link_item("z", "/etc")}, opt);
  // A file replaces a directory tree, a directory replaces a file, a file replaces a symlink
  // (never writing through it), a directory onto a directory keeps its contents.
  apply_items(tmp.path(), {file_item("x", "now a file"), dir_item("y"), file_item("z", "plain")}, opt);
  CHECK(read_text(tmp.path() / "x") == "now a file");
  CHECK(fs::is_directory(fs::symlink_status(tmp.path() / "y")));
  CHECK(fs::is_regular_file(fs::symlink_status(tmp.path() / "z")));
  apply_items(tmp.path(), {file_item("y/in", "i")}, opt);
  apply_items(tmp.path(), {dir_item("y", 0700)}, opt);
  CHECK(read_text(tmp.path() / "y/in") == "i");
  CHECK((fs::status(tmp.path() / "y").permissions() & fs::perms::all) == fs::perms::owner_all);
}

TEST_CASE("applier: bad input ends in one clear error") {
  TempDir tmp;
  ApplyOptions opt;
  opt.same_owner = false;
  opt.mode = ApplyMode::Flatten;
  CHECK_THROWS_WITH_AS(Applier(tmp.path() / "missing", opt), doctest::Contains("missing"), Error);
  Applier a(tmp.path(), opt);
  cbuild::oci::TarEntry e;
  e.path = "f";
  e.size = 10;
  const std::string abc = "abc";
  cbuild::oci::MemorySource short_data(abc);
  CHECK_THROWS_WITH_AS(a.apply(e, &short_data), doctest::Contains("truncated"), Error);
  cbuild::oci::TarEntry h;
  h.path = "h";
  h.type = cbuild::oci::TarType::Hardlink;
  h.link_target = "nothing-here";
  CHECK_THROWS_WITH_AS(a.apply(h, nullptr), doctest::Contains("\"h\""), Error);
  // A truncated tar is DataLoss from the reader, and nothing outside the root is touched.
  std::string tar = make_tar({file_item("big", std::string(5000, 'x'))});
  auto r = reader_for(tar.substr(0, 2000));
  try {
    apply_layer(*r, tmp.path(), opt);
    FAIL("expected an error");
  } catch (const Error& err) {
    CHECK(err.kind() == cbuild::ErrorKind::DataLoss);
  }
}
