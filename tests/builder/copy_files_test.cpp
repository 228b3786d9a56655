// COPY semantics between two directory roots (builder/steps/copy_files.h).
#include "builder/steps/copy_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::builder;

namespace {

void write(const fs::path& p, const std::string& text, mode_t mode = 0644) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  ::chmod(p.c_str(), mode);
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Roots {
  TempDir tmp;
  fs::path src = tmp.path() / "ctx";
  fs::path dst = tmp.path() / "rootfs";
  UniqueFd src_fd, dst_fd;
  Roots() {
    fs::create_directories(src);
    fs::create_directories(dst);
    src_fd = open_file(src, O_RDONLY | O_DIRECTORY);
    dst_fd = open_file(dst, O_RDONLY | O_DIRECTORY);
  }
  CopyStats copy(CopySpec spec) {
    auto is_dir = [this](const std::string& p) { return fs::is_directory(dst / p); };
    auto plan = plan_copy(src_fd.get(), spec, is_dir);
    return apply_copy(src_fd.get(), dst_fd.get(), plan, spec);
  }
};

std::vector<std::string> dests(const CopyPlan& p) {
  std::vector<std::string> out;
  for (auto& i : p.items) out.push_back(i.dest);
  return out;
}

}  // namespace

TEST_CASE("match_component follows Go's filepath.Match") {
  CHECK(match_component("*.txt", "a.txt"));
  CHECK_FALSE(match_component("*.txt", "a.txt.bak"));
  CHECK(match_component("a?c", "abc"));
  CHECK_FALSE(match_component("a?c", "ac"));
  CHECK(match_component("[a-c]x", "bx"));
  CHECK_FALSE(match_component("[^a-c]x", "bx"));
  CHECK(match_component("[!a-c]x", "dx"));
  CHECK(match_component("\\*", "*"));
  CHECK_FALSE(match_component("\\*", "x"));
  CHECK(match_component("*", ""));
  CHECK(match_component("a*b*c", "aXXbYYc"));
  CHECK_FALSE(match_component("a*b*c", "aXXbYY"));
  CHECK_FALSE(match_component("[abc", "a"));  // malformed class matches nothing
}

TEST_CASE("plan_copy: directory contents, trailing slash, rename, several sources") {
  Roots r;
  write(r.src / "dir/a.txt", "a");
  write(r.src / "dir/sub/b.txt", "b");
  write(r.src / "one.txt", "1");
  write(r.src / "two.txt", "2");

  SUBCASE("a directory copies its contents") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"dir"}, .dest = "/app"}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"app", "app/a.txt", "app/sub", "app/sub/b.txt"});
  }
  SUBCASE("a file to a path ending in / goes inside it") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"one.txt"}, .dest = "/opt/"}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"opt/one.txt"});
    CHECK(plan.parents == std::vector<std::string>{"opt"});
  }
  SUBCASE("a file to a path without / is renamed, unless the image has a directory there") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"one.txt"}, .dest = "/opt/x"}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"opt/x"});
    auto plan2 = plan_copy(r.src_fd.get(), {.sources = {"one.txt"}, .dest = "/opt/x"},
                           [](const std::string& p) { return p == "opt/x"; });
    CHECK(dests(plan2) == std::vector<std::string>{"opt/x/one.txt"});
  }
  SUBCASE("several sources need a destination ending in /") {
    CHECK_THROWS_AS(plan_copy(r.src_fd.get(), {.sources = {"one.txt", "two.txt"}, .dest = "/opt"}, nullptr), Error);
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"one.txt", "two.txt"}, .dest = "/opt/"}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"opt/one.txt", "opt/two.txt"});
  }
  SUBCASE("wildcards match per component; no match copies nothing, a missing directory is an error") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"*.txt"}, .dest = "/w/"}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"w/one.txt", "w/two.txt"});
    auto plan2 = plan_copy(r.src_fd.get(), {.sources = {"d*/s*/*.txt"}, .dest = "/w/"}, nullptr);
    CHECK(dests(plan2) == std::vector<std::string>{"w/b.txt"});
    auto none = plan_copy(r.src_fd.get(), {.sources = {"one.txt", "*.nope"}, .dest = "/w/"}, nullptr);
    CHECK(dests(none) == std::vector<std::string>{"w/one.txt"});
    try {
      plan_copy(r.src_fd.get(), {.sources = {"nodir/*.nope"}, .dest = "/w/"}, nullptr);
      FAIL("expected an error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("nodir/*.nope") != std::string::npos);
    }
  }
  SUBCASE("a missing source is NotFound and names it") {
    try {
      plan_copy(r.src_fd.get(), {.sources = {"missing.txt"}, .dest = "/"}, nullptr);
      FAIL("expected an error");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::NotFound);
      CHECK(std::string(e.what()).find("missing.txt") != std::string::npos);
    }
  }
  SUBCASE("excluded paths are left out, and an excluded source is not found") {
    CopySpec spec{.sources = {"dir"}, .dest = "/app/"};
    spec.excluded = [](const std::string& p) { return p == "dir/sub"; };
    auto plan = plan_copy(r.src_fd.get(), spec, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"app", "app/a.txt"});
    CopySpec spec2{.sources = {"one.txt"}, .dest = "/"};
    spec2.excluded = [](const std::string& p) { return p == "one.txt"; };
    CHECK_THROWS_AS(plan_copy(r.src_fd.get(), spec2, nullptr), Error);
  }
  SUBCASE("'..' never leaves the source root") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"../../one.txt"}, .dest = "/x"}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"x"});
    CHECK(plan.items[0].src == "one.txt");
  }
}

TEST_CASE("apply_copy writes files, keeps inner symlinks, follows a top-level symlink") {
  REQUIRE_ROOT();  // owners are set to 0:0 / the --chown ids
  Roots r;
  write(r.src / "dir/run.sh", "#!/bin/sh\n", 0755);
  fs::create_symlink("run.sh", r.src / "dir/link");
  fs::create_symlink("dir/run.sh", r.src / "top-link");

  auto stats = r.copy({.sources = {"dir", "top-link"}, .dest = "/app/"});
  CHECK(stats.files == 2);
  CHECK(stats.symlinks == 1);
  CHECK(read(r.dst / "app/run.sh") == "#!/bin/sh\n");
  CHECK(fs::is_symlink(r.dst / "app/link"));
  CHECK(fs::read_symlink(r.dst / "app/link") == "run.sh");
  CHECK_FALSE(fs::is_symlink(r.dst / "app/top-link"));  // followed: a copy of run.sh
  CHECK(read(r.dst / "app/top-link") == "#!/bin/sh\n");
  struct stat st {};
  REQUIRE(::stat((r.dst / "app/run.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  CHECK(st.st_uid == 0);

  SUBCASE("--chown owns the files and the directories the copy creates; --chmod sets modes") {
    write(r.src / "f", "x", 0600);
    r.copy({.sources = {"f"}, .dest = "/new/deep/", .uid = 1000, .gid = 1001, .chmod = 0640});
    REQUIRE(::stat((r.dst / "new/deep/f").c_str(), &st) == 0);
    CHECK(st.st_uid == 1000);
    CHECK(st.st_gid == 1001);
    CHECK((st.st_mode & 07777) == 0640);
    REQUIRE(::stat((r.dst / "new/deep").c_str(), &st) == 0);
    CHECK(st.st_uid == 1000);
    CHECK((st.st_mode & 07777) == 0755);
  }
  SUBCASE("a symlink in the image cannot redirect the write out of the root") {
    fs::create_directories(r.tmp.path() / "outside");
    fs::create_directory_symlink(r.tmp.path() / "outside", r.dst / "evil");
    write(r.src / "f", "payload");
    r.copy({.sources = {"f"}, .dest = "/evil/f"});
    CHECK_FALSE(fs::exists(r.tmp.path() / "outside/f"));
    CHECK(read(r.dst / r.tmp.path().relative_path() / "outside/f") == "payload");
  }
  SUBCASE("a file cannot replace a directory") {
    fs::create_directories(r.dst / "app/x");
    write(r.src / "src/x", "x");
    CHECK_THROWS_AS(r.copy({.sources = {"src"}, .dest = "/app/"}), Error);
  }
}

TEST_CASE("content_key covers content, mode, owner and link targets, not mtime") {
  Roots r;
  write(r.src / "a", "one");
  fs::create_symlink("a", r.src / "l");
  CopySpec spec{.sources = {"a", "l"}, .dest = "/d/"};
  auto key = [&] { return content_key(r.src_fd.get(), plan_copy(r.src_fd.get(), spec, nullptr), spec); };
  auto k0 = key();
  CHECK(key() == k0);
  struct timespec ts[2] = {{1000, 0}, {1000, 0}};
  ::utimensat(AT_FDCWD, (r.src / "a").c_str(), ts, 0);
  CHECK(key() == k0);
  write(r.src / "a", "two");
  auto k1 = key();
  CHECK(k1 != k0);
  ::chmod((r.src / "a").c_str(), 0600);
  auto k2 = key();
  CHECK(k2 != k1);
  fs::remove(r.src / "l");
  fs::create_symlink("b", r.src / "l");
  CHECK_THROWS_AS(key(), Error);  // a top-level symlink is followed: "b" does not exist
  write(r.src / "b", "two");
  ::chmod((r.src / "b").c_str(), 0600);
  CHECK(key() == k2);  // same bytes, mode and owner through the followed link
  write(r.src / "b", "three");
  auto k3 = key();
  CHECK(k3 != k2);
  spec.uid = 5;
  CHECK(key() != k3);
}

TEST_CASE("content_key covers a file's security.capability from an image, not from the context") {
  REQUIRE_ROOT();
  Roots r;
  write(r.src / "ping", "p", 0755);
  CopySpec context{.sources = {"ping"}, .dest = "/bin/ping"};
  CopySpec image = context;
  image.keep_owner = true;
  auto key = [&](const CopySpec& spec) {
    return content_key(r.src_fd.get(), plan_copy(r.src_fd.get(), spec, nullptr), spec);
  };
  auto kc = key(context), ki = key(image);
  // cap_net_raw+ep, then cap_net_admin+ep: only the capability changes.
  const char raw[20] = {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const char admin[20] = {1, 0, 0, 2, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  REQUIRE(::setxattr((r.src / "ping").c_str(), "security.capability", raw, sizeof raw, 0) == 0);
  auto ki_raw = key(image);
  CHECK(ki_raw != ki);
  CHECK(key(context) == kc);  // context files land without xattrs, as docker's
  REQUIRE(::setxattr((r.src / "ping").c_str(), "security.capability", admin, sizeof admin, 0) == 0);
  CHECK(key(image) != ki_raw);
  REQUIRE(::setxattr((r.src / "ping").c_str(), "user.note", "n", 1, 0) == 0);
  auto ki_admin = key(image);
  REQUIRE(::removexattr((r.src / "ping").c_str(), "user.note") == 0);
  CHECK(key(image) == ki_admin);  // no other xattr reaches a layer
}

TEST_CASE("plan_copy: --parents keeps paths below the root or a /./ pivot; --exclude is anchored at each source") {
  Roots r;
  write(r.src / "x/y/a.txt", "a");
  write(r.src / "x/y/b.md", "b");
  write(r.src / "x/z/c.txt", "c");
  write(r.src / "w/d.txt", "d");
  auto lazy = [](const CopyPlan& p) {
    std::vector<std::string> out;
    for (auto& i : p.items)
      if (i.lazy_parent) out.push_back(i.dest);
    return out;
  };
  SUBCASE("a literal path: its directories come first, only as parents") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"x/y/a.txt"}, .dest = "/d", .parents = true}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"d/x", "d/x/y", "d/x/y/a.txt"});
    CHECK(lazy(plan) == std::vector<std::string>{"d/x", "d/x/y"});
    CHECK(plan.parents == std::vector<std::string>{"d"});
  }
  SUBCASE("a pivot and a wildcard: only what follows the pivot, parents only where a match is") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"x/./*/*.txt"}, .dest = "/d/", .parents = true}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"d/y", "d/y/a.txt", "d/z", "d/z/c.txt"});
    auto md = plan_copy(r.src_fd.get(), {.sources = {"**/*.md"}, .dest = "/d/", .parents = true}, nullptr);
    CHECK(dests(md) == std::vector<std::string>{"d/x", "d/x/y", "d/x/y/b.md"});
  }
  SUBCASE("--exclude below each source, and with --parents below the pivot") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"x"}, .dest = "/d/", .exclude = {"y/*.md", "z"}}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"d", "d/y", "d/y/a.txt"});
    // "*" matches w and x, each a source of its own: *.txt drops w/d.txt, not x/z/c.txt.
    auto wild = plan_copy(r.src_fd.get(), {.sources = {"*"}, .dest = "/d/", .exclude = {"*.txt"}}, nullptr);
    CHECK(dests(wild) == std::vector<std::string>{"d", "d", "d/y", "d/y/a.txt", "d/y/b.md", "d/z", "d/z/c.txt"});
    auto par = plan_copy(r.src_fd.get(), {.sources = {"x", "w"}, .dest = "/d/", .exclude = {"x/z", "**/*.md"}, .parents = true},
                         nullptr);
    CHECK(dests(par) == std::vector<std::string>{"d/x", "d/x/y", "d/x/y/a.txt", "d/w", "d/w/d.txt"});
  }
  SUBCASE("! exceptions bring back an entry inside an excluded directory, which becomes a parent") {
    auto plan = plan_copy(r.src_fd.get(), {.sources = {"x"}, .dest = "/d/", .exclude = {"y", "!y/b.md", "z"}}, nullptr);
    CHECK(dests(plan) == std::vector<std::string>{"d", "d/y", "d/y/b.md"});
    CHECK(lazy(plan) == std::vector<std::string>{"d/y"});
  }
  SUBCASE("a bad pattern names the flag") {
    try {
      plan_copy(r.src_fd.get(), {.sources = {"x"}, .dest = "/d/", .exclude = {"[x"}}, nullptr);
      FAIL("expected an error");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::InvalidArgument);
      CHECK(std::string(e.what()).find("--exclude") != std::string::npos);
    }
  }
}

TEST_CASE("apply_copy: a parent that already exists only takes the source's mode") {
  REQUIRE_ROOT();
  Roots r;
  write(r.src / "x/a.txt", "a");
  ::chmod((r.src / "x").c_str(), 0750);
  fs::create_directories(r.dst / "d/x");
  REQUIRE(::chown((r.dst / "d/x").c_str(), 7, 8) == 0);
  r.copy({.sources = {"x/a.txt"}, .dest = "/d/", .uid = 1000, .gid = 1000, .parents = true});
  struct stat st {};
  REQUIRE(::stat((r.dst / "d/x").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0750);
  CHECK(st.st_uid == 7);  // fsutil's createParentDirs leaves an existing directory's owner
  REQUIRE(::stat((r.dst / "d/x/a.txt").c_str(), &st) == 0);
  CHECK(st.st_uid == 1000);
}
