// COPY --parents, --exclude and --link end to end through the real binary. docker 20.10 here
// knows none of them, so the expected trees are written out by hand from BuildKit's documented
// semantics (Dockerfile reference, and buildkit's dockerfile_parents_test.go /
// dockerfile_excludepatterns_test.go).
#include <sys/stat.h>

#include <doctest/doctest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"
#include "tests/support/store_image.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

// One expected entry of tree_listing(): files by content, directories by mode and owner.
std::string file_line(const std::string& path, const std::string& content, const char* mode = "0644",
                      const char* owner = "0:0") {
  return path + " file " + mode + " " + owner + " " + std::to_string(content.size()) + " " +
         oci::Digest::of(content).hex().substr(0, 16) + "\n";
}
std::string dir_line(const std::string& path, const char* mode = "0755", const char* owner = "0:0") {
  return path + " dir " + mode + " " + owner + " - \n";
}

// tree_listing() sorts its lines; so does this, so expectations can be written in any order.
std::string sorted(const std::string& lines) {
  std::vector<std::string> v;
  std::size_t i = 0;
  while (i < lines.size()) {
    auto j = lines.find('\n', i);
    v.push_back(lines.substr(i, j - i + 1));
    i = j + 1;
  }
  std::sort(v.begin(), v.end());
  std::string out;
  for (auto& l : v) out += l;
  return out;
}

void check_tree(const fs::path& dir, const std::string& expected) {
  REQUIRE_MESSAGE(fs::is_directory(dir), dir << " is missing");
  std::string diff = test::listing_diff(sorted(expected), test::tree_listing(dir));
  CHECK_MESSAGE(diff.empty(), dir.filename().string() << ": expected (-) vs cbuild (+):\n" << diff);
}

}  // namespace

TEST_CASE("build: COPY --parents keeps parent directories, below a /./ pivot, with globs and **") {
  REQUIRE_ROOT();
  test::BuildProject p;
  p.file("x/a.txt", "xa\n");
  p.file("y/a.txt", "ya\n");
  p.file("x/y/b.txt", "b\n", 0600);
  p.file("x/y/c.md", "c\n");
  p.file("x/y/deep/d.txt", "d\n");
  p.file("z/e.md", "e\n");
  p.file("z/skip.log", "never\n");
  p.file(".dockerignore", "z/skip.log\n");
  p.dir_mode("x", 0750);
  p.dir_mode("x/y", 0711);
  p.file("Dockerfile",
         "FROM " + p.base + " AS build\n"
         "RUN mkdir -p /app/dist/js /app/src && echo m > /app/dist/js/m.js && echo s > /app/src/s.js\n"
         "FROM " + p.base + "\n"
         // From another stage sources are absolute; the pivot drops /app.
         "COPY --from=build --parents /app/./**/*.js /from/\n"
         "COPY ./x/a.txt ./y/a.txt /no_parents/\n"
         "COPY --parents ./x/a.txt ./y/a.txt /parents/\n"
         "COPY --parents ./x/./y/*.txt /pivot/\n"
         "COPY --parents **/*.md /md/\n"
         "COPY --parents x/./y /dir\n"
         "COPY --parents --chown=1000:1500 x/y/deep/d.txt z /owned/\n"
         "WORKDIR /w\n"
         "COPY --parents z/* rel/\n");
  auto r = p.build({"-t", "parents:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  fs::path t = p.tree("docker.io/library/parents:1", work.path() / "t/rootfs");

  check_tree(t / "from", dir_line("dist") + dir_line("dist/js") + file_line("dist/js/m.js", "m\n") +
                             dir_line("src") + file_line("src/s.js", "s\n"));
  // Without --parents both land on /no_parents/a.txt: the later source wins (BuildKit).
  check_tree(t / "no_parents", file_line("a.txt", "ya\n"));
  // The directories on the way are the context's (x is 0750), created where a file needs them.
  check_tree(t / "parents", dir_line("x", "0750") + file_line("x/a.txt", "xa\n") + dir_line("y") +
                                file_line("y/a.txt", "ya\n"));
  // Only what follows the pivot is kept; `*` stays within one directory.
  check_tree(t / "pivot", dir_line("y", "0711") + file_line("y/b.txt", "b\n", "0600"));
  // `**` spans directories, and only directories leading to a match are created.
  check_tree(t / "md", dir_line("x", "0750") + dir_line("x/y", "0711") + file_line("x/y/c.md", "c\n") +
                           dir_line("z") + file_line("z/e.md", "e\n"));
  // A directory source keeps its name below the pivot; the destination is a directory even
  // without a trailing slash.
  check_tree(t / "dir", dir_line("y", "0711") + file_line("y/b.txt", "b\n", "0600") + file_line("y/c.md", "c\n") +
                            dir_line("y/deep") + file_line("y/deep/d.txt", "d\n"));
  // --chown owns the recreated parents too; .dockerignore still applies.
  check_tree(t / "owned", dir_line("x", "0750", "1000:1500") + dir_line("x/y", "0711", "1000:1500") +
                              dir_line("x/y/deep", "0755", "1000:1500") +
                              file_line("x/y/deep/d.txt", "d\n", "0644", "1000:1500") +
                              dir_line("z", "0755", "1000:1500") + file_line("z/e.md", "e\n", "0644", "1000:1500"));
  // A relative destination joins the WORKDIR.
  check_tree(t / "w/rel", dir_line("z") + file_line("z/e.md", "e\n"));

  auto history = p.config("docker.io/library/parents:1")["history"];
  bool found = false;
  for (const auto& h : history)
    found = found || h.value("created_by", "") == "COPY --parents ./x/a.txt ./y/a.txt /parents/ # buildkit";
  CHECK_MESSAGE(found, history.dump(1));

  SUBCASE("a --parents source without wildcards must exist; a pattern must match") {
    p.file("Dockerfile", "FROM " + p.base + "\nCOPY --parents x/nope.txt /d/\n");
    auto missing = p.build({"-t", "bad:1"});
    CHECK(missing.exit_code == 1);
    CHECK(missing.err.find("Dockerfile:2: COPY --parents x/nope.txt /d/: source \"x/nope.txt\" not found") !=
          std::string::npos);
    p.file("Dockerfile", "FROM " + p.base + "\nCOPY --parents x/*.none /d/\n");
    auto none = p.build({"-t", "bad:1"});
    CHECK(none.exit_code == 1);
    CHECK(none.err.find("source \"x/*.none\" matches no file") != std::string::npos);
  }
}

TEST_CASE("build: COPY --exclude skips what its patterns match below each source") {
  REQUIRE_ROOT();
  test::BuildProject p;
  p.file("dir1/file-101.png", "1\n");
  p.file("dir1/file-102.txt", "2\n");
  p.file("dir1/sub/x.png", "3\n");
  p.file("dir1/sub/y.txt", "4\n");
  p.file("dir2/file-201.pdf", "5\n");
  p.file("dir2/file-202.txt", "6\n");
  p.file("keep/a.log", "7\n");
  p.file("keep/b.txt", "8\n");
  p.file("keep/inner/c.txt", "9\n");
  p.file("Dockerfile",
         "FROM " + p.base + "\n"
         "COPY --exclude=*.png dir1 /e1/\n"
         "COPY --exclude=**/*.png dir1 /e2/\n"
         "COPY --exclude=*.pdf --exclude=*.png dir* /e3/\n"
         "COPY --exclude=* --exclude=!b.txt --exclude=!inner/c.txt keep /e4/\n"
         "COPY --exclude=sub dir1 /e5/\n"
         "COPY --parents --exclude=dir1/sub --exclude=**/*.pdf dir1 dir2 /e6/\n"
         "ADD --exclude=*.txt dir2 /e7/\n"
         "COPY --exclude=* dir2 /e8/\n");
  auto r = p.build({"-t", "exclude:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  fs::path t = p.tree("docker.io/library/exclude:1", work.path() / "t/rootfs");
  // `*.png` matches at the top of the source only, like .dockerignore (buildkit#5509).
  check_tree(t / "e1", file_line("file-102.txt", "2\n") + dir_line("sub") + file_line("sub/x.png", "3\n") +
                           file_line("sub/y.txt", "4\n"));
  check_tree(t / "e2", file_line("file-102.txt", "2\n") + dir_line("sub") + file_line("sub/y.txt", "4\n"));
  // Each match of a wildcard source is a source of its own.
  check_tree(t / "e3", file_line("file-102.txt", "2\n") + dir_line("sub") + file_line("sub/x.png", "3\n") +
                           file_line("sub/y.txt", "4\n") + file_line("file-202.txt", "6\n"));
  // `!` exceptions bring back entries, and the directories leading to them.
  check_tree(t / "e4", file_line("b.txt", "8\n") + dir_line("inner") + file_line("inner/c.txt", "9\n"));
  // A matching directory goes with everything in it.
  check_tree(t / "e5", file_line("file-101.png", "1\n") + file_line("file-102.txt", "2\n"));
  // With --parents the patterns are anchored at the source root.
  check_tree(t / "e6", dir_line("dir1") + file_line("dir1/file-101.png", "1\n") + file_line("dir1/file-102.txt", "2\n") +
                           dir_line("dir2") + file_line("dir2/file-202.txt", "6\n"));
  check_tree(t / "e7", file_line("file-201.pdf", "5\n"));
  // Everything excluded: the destination directory is still created (buildkit's builder6 case).
  check_tree(t / "e8", "");
}

TEST_CASE("build: COPY --link writes into an empty tree and its layer is reused on any base") {
  REQUIRE_ROOT();
  test::BuildProject p;
  p.file("a.txt", "a\n");
  p.file("data/big", std::string(100000, 'z'));
  p.file("data/sub/s", "s\n");
  p.file("b.txt", "b\n");
  auto dockerfile = [&](const std::string& run) {
    p.file("Dockerfile",
           "FROM " + p.base + "\n"
           "RUN " + run + " && mkdir /target\n"
           "COPY --link a.txt /opt/app/\n"
           "COPY --link --chown=app:extra data /data/\n"
           // --link never looks at the image: /target is not seen as a directory...
           "COPY --link b.txt /target\n"
           // ...and /tmp (01777 in the base) is replaced by the 0755 directory the copy made.
           "COPY --link b.txt /tmp/\n"
           // A numeric user alone is also the group (BuildKit), with or without --link.
           "COPY --link --chown=4242 b.txt /n/\n"
           // With --chmod BuildKit does a plain copy, onto the image.
           "RUN mkdir /target2\n"
           "COPY --link --chmod=0640 b.txt /target2\n"
           "COPY a.txt /plain/\n");
  };
  dockerfile("echo one > /one");
  auto first = p.build({"-t", "link:1"});
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  TempDir work;
  fs::path t = p.tree("docker.io/library/link:1", work.path() / "t/rootfs");
  CHECK(test::read_text(t / "one") == "one\n");
  check_tree(t / "opt", dir_line("app") + file_line("app/a.txt", "a\n"));
  check_tree(t / "data", file_line("big", std::string(100000, 'z'), "0644", "1000:1500") +
                             dir_line("sub", "0755", "1000:1500") + file_line("sub/s", "s\n", "0644", "1000:1500"));
  CHECK(test::read_text(t / "target") == "b\n");
  struct stat st {};
  REQUIRE(::stat((t / "tmp").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  check_tree(t / "target2", file_line("b.txt", "b\n", "0640"));
  check_tree(t / "n", file_line("b.txt", "b\n", "0644", "4242:4242"));

  // The first --link layer alone: the copied file and the directories it needed, nothing else.
  auto m1 = p.manifest("docker.io/library/link:1");
  REQUIRE(m1.layers.size() == 10);  // base, RUN, 5 × COPY --link, RUN, COPY --chmod, COPY
  fs::path only = p.tree("docker.io/library/link:1", work.path() / "only/rootfs", 2, 3);
  CHECK(test::tree_listing(only) == sorted(dir_line("opt") + dir_line("opt/app") + file_line("opt/app/a.txt", "a\n")));

  // A different layer below: every --link layer is reused as it is, the plain COPYs are not.
  dockerfile("echo two > /two");
  auto second = p.build({"-t", "link:2"});
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  auto m2 = p.manifest("docker.io/library/link:2");
  REQUIRE(m2.layers.size() == m1.layers.size());
  CHECK(m2.layers[1].digest != m1.layers[1].digest);
  for (std::size_t i : {2, 3, 4, 5, 6}) CHECK_MESSAGE(m2.layers[i].digest == m1.layers[i].digest, "layer " << i);
  CHECK(second.err.find("#4 CACHED") != std::string::npos);
  fs::path t2 = p.tree("docker.io/library/link:2", work.path() / "t2/rootfs");
  CHECK(test::read_text(t2 / "two") == "two\n");
  CHECK(test::read_text(t2 / "opt/app/a.txt") == "a\n");
  CHECK(test::read_text(t2 / "data/sub/s") == "s\n");

  // Same base again: everything is a cache hit and the image is the same.
  auto third = p.build({"-t", "link:3"});
  REQUIRE_MESSAGE(third.exit_code == 0, third.err);
  CHECK(third.out == second.out);
}
