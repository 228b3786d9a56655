// `!` exceptions in .dockerignore, through the real binary and compared with docker build: the
// files an exception re-includes below an excluded directory reach `COPY . /ctx/` (with the
// directories on the way, as they are in the context), and COPY of such a directory works.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "builder/context/dockerignore.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

// One context for every case: Go-ish sources, a vendor tree, docs, and directories whose modes
// differ from the default, so a re-created parent with the wrong mode shows.
void make_context(const test::BuildProject& p) {
  for (const char* f : {"README.md", "NOTES.md", "main.go", "src/main.go", "src/util.go", "src/sub/deep.go",
                        "src/sub/keep.go", "src/mykeep.go", "cmd/app/main.go", "cmd/app/keep.go", "cmd/tool/x.go",
                        "vendor/lib/keep.go", "vendor/lib/drop.go", "vendor/other/x.go", "dir/a.txt", "dir/b.md",
                        "dir/sub/c.txt", "docs/guide.md", "docs/README.md", "a+b", "aab",
                        "web/app/node_modules/keep.js", "web/app/node_modules/drop.js", "web/app/index.js"})
    p.file(f, std::string(f) + "\n");
  fs::create_directories(p.ctx / "src/empty");
  ::chmod((p.ctx / "src").c_str(), 0750);
  ::chmod((p.ctx / "vendor/lib").c_str(), 0711);
  ::chmod((p.ctx / "cmd/app").c_str(), 0700);
  ::chmod((p.ctx / "src/sub/keep.go").c_str(), 0600);
}

struct Case {
  const char* name;
  const char* ignore;
};

const Case kCases[] = {
    {"everything but src/**", "*\n!src/**\n"},
    {"everything but one file", "*\n!src/main.go\n"},
    {"a directory but one file in it", "vendor/\n!vendor/lib/keep.go\n"},
    {"**/*.go but **/keep.go", "**/*.go\n!**/keep.go\n"},
    {"an exception before any exclusion", "!docs/README.md\ndocs\n"},
    {"*.md but README.md", "*.md\n!README.md\n"},
    {"dir/* then !dir", "dir/*\n!dir\n"},
    {"comments, blank lines, trailing spaces",
     "# a comment\n\n   vendor/   \n\t\n#!vendor/lib\n!vendor/lib/keep.go   \n ./dir/sub \n  # not a comment\n"},
    {"everything but **/keep.go", "*\n!**/keep.go\n"},
    {"a directory but a wildcard in it", "dir\n!dir/*.txt\n"},
    {"a leading slash", "/src/sub\n!/src/sub/keep.go\n"},
    {"**/node_modules but one file", "**/node_modules\n!web/app/node_modules/keep.js\n"},
    {"an excluded directory with an exception naming nothing in it", "cmd\n!cmd/none\n"},
    {"** but a directory", "**\n!src\n"},
    {"dir/* but a file two levels down", "src/*\n!src/sub/keep.go\n"},
    {"a leading ** glued to a name", "**keep.go\n"},
    {"? and a class", "?ain.go\n[a-m]*.md\n!docs/[r-s]*.md\n"},
};

}  // namespace

TEST_CASE("dockerignore: ! exceptions give the context docker build gives COPY . /ctx/") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  for (const Case& c : kCases) {
    CAPTURE(c.name);
    test::BuildProject p(test::base_for_test());
    make_context(p);
    p.file(".dockerignore", c.ignore);
    p.file("Dockerfile", "FROM " + p.base + "\nCOPY . /ctx/\n");
    auto r = p.build({"-t", "ignore:1"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    TempDir work;
    auto [config, mine] = p.image("docker.io/library/ignore:1", work.path() / "mine/rootfs");
    if (!docker) continue;
    auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
    std::string theirs = test::tree_listing(b.rootfs / "ctx"), ours = test::tree_listing(mine / "ctx");
    std::string diff = test::listing_diff(theirs, ours);
    CHECK_MESSAGE(diff.empty(), "docker:\n" << theirs << "docker (-) vs cbuild (+):\n" << diff);
  }
}

TEST_CASE("dockerignore: a directory an exception keeps can be copied and bind-mounted; one it does not is missing") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  make_context(p);
  // An archive next to the sources puts ADD on the path that writes onto disk (not streamed).
  auto tar = test::run_command(
      {"/bin/sh", "-c", "cd " + p.ctx.string() + " && echo t > t.txt && tar -cf a.tar t.txt && rm t.txt"});
  REQUIRE_MESSAGE(tar.exit_code == 0, tar.err);
  p.file(".dockerignore", "*\n!src/**\n!vendor/lib/keep.go\n!cmd/app/keep.go\n!a.tar\n");
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "COPY src/ /s/\n"
         "ADD a.tar vendor /both/\n"
         "COPY vendor/lib /lib/\n"
         "COPY cmd /cmd/\n"
         "COPY vendor /vendor/\n"
         "RUN --mount=type=bind,source=vendor,target=/m find /m | sort > /mounted.txt\n");
  auto r = p.build({"-t", "ignore:2"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/ignore:2", work.path() / "mine/rootfs");
  CHECK(read_file(mine / "s/sub/keep.go") == "src/sub/keep.go\n");
  CHECK(read_file(mine / "lib/keep.go") == "vendor/lib/keep.go\n");
  CHECK_FALSE(fs::exists(mine / "lib/drop.go"));
  CHECK(read_file(mine / "mounted.txt") == "/m\n/m/lib\n/m/lib/keep.go\n");
  CHECK(test::tree_listing(mine / "both", {"t.txt"}) == test::tree_listing(mine / "vendor"));
  // vendor/other is left out of the context with all it holds.
  p.file("Dockerfile.missing", "FROM " + p.base + "\nCOPY vendor/other /o/\n");
  auto missing = p.build({"-f", (p.ctx / "Dockerfile.missing").string(), "-t", "ignore:3"});
  CHECK(missing.exit_code != 0);
  CHECK_MESSAGE(missing.err.find("vendor/other") != std::string::npos, missing.err);

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  for (const char* dir : {"s", "lib", "cmd", "vendor", "both"}) {
    CAPTURE(dir);
    std::string diff = test::listing_diff(test::tree_listing(b.rootfs / dir), test::tree_listing(mine / dir));
    CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  }
  CHECK(read_file(b.rootfs / "mounted.txt") == read_file(mine / "mounted.txt"));
  auto bm = docker->build(p.ctx, p.ctx / "Dockerfile.missing", work.path() / "docker-missing");
  CHECK(bm.result.exit_code != 0);
}

TEST_CASE("dockerignore: a pattern docker would read as a regular expression is an error, not a literal") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("a+b", "literal\n");
  p.file("aab", "what docker's regexp a+b matches\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY . /ctx/\n");
  for (const char* bad : {"a+b", "(x)", "x|y", "a{2}b", "^a", "\\d", "[[:alpha:]]"}) {
    CAPTURE(bad);
    p.file(".dockerignore", std::string("# ok\n") + bad + "\n");
    auto r = p.build({"-t", "ignore:4"});
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find(".dockerignore:2") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("regular-expression") != std::string::npos, r.err);
  }
  // Still literal, in docker as here: `{` that is no repeat, `.`, `$`, an escaped `+`.
  p.file(".dockerignore", "a{b\nx.y$\na\\+b\n");
  p.file("a{b", "x\n");
  p.file("x.y$", "x\n");
  p.file("xzy$", "x\n");
  auto r = p.build({"-t", "ignore:5"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/ignore:5", work.path() / "mine/rootfs");
  CHECK_FALSE(fs::exists(mine / "ctx/a{b"));
  CHECK_FALSE(fs::exists(mine / "ctx/x.y$"));
  CHECK_FALSE(fs::exists(mine / "ctx/a+b"));
  CHECK(fs::exists(mine / "ctx/xzy$"));
  CHECK(fs::exists(mine / "ctx/aab"));

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs / "ctx"), test::tree_listing(mine / "ctx"));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  // Why the error: docker really reads `+` as a repetition (a+b drops aab, keeps a+b).
  p.file(".dockerignore", "a+b\n");
  auto plus = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker-plus");
  REQUIRE_MESSAGE(plus.result.exit_code == 0, plus.result.err);
  CHECK_FALSE(fs::exists(plus.rootfs / "ctx/aab"));
  CHECK(fs::exists(plus.rootfs / "ctx/a+b"));
}

TEST_CASE("dockerignore: context_verdict follows docker 20.10's client walk") {
  using builder::DockerIgnore;
  using V = DockerIgnore::Verdict;
  auto d = DockerIgnore::parse("*\n!src/main.go\n");
  CHECK(d.context_verdict("Dockerfile") == V::Excluded);
  CHECK(d.context_verdict("src") == V::SentIfDirectory);
  CHECK(d.context_verdict("src/main.go") == V::Sent);
  CHECK(d.context_verdict("src/util.go") == V::Excluded);
  CHECK(d.context_verdict("src/sub/main.go") == V::Excluded);  // src/sub is not entered
  // Only the parent with as many components as the pattern is tried (fileutils.Matches).
  auto nm = DockerIgnore::parse("**/node_modules\n!web/app/node_modules/keep.js\n");
  CHECK(nm.context_verdict("web/app/node_modules") == V::SentIfDirectory);
  CHECK(nm.context_verdict("web/app/node_modules/drop.js") == V::Sent);
  CHECK(nm.context_verdict("other/node_modules/x") == V::Excluded);
  // An exception first, or one naming nothing that exists: the directory is still sent, empty.
  auto first = DockerIgnore::parse("!docs/README.md\ndocs\n");
  CHECK(first.context_verdict("docs") == V::SentIfDirectory);
  CHECK(first.context_verdict("docs/README.md") == V::SentIfDirectory);  // a file: left out
  // A wildcard exception is entered only below the literal start of its text.
  auto wild = DockerIgnore::parse("*\n!**/keep.go\n");
  CHECK(wild.context_verdict("keep.go") == V::Sent);
  CHECK(wild.context_verdict("src/keep.go") == V::Excluded);
  // "**foo" is "(.*/)?foo" in an ignore file, a plain suffix in a flag.
  CHECK(DockerIgnore::parse("**foo\n").context_verdict("xfoo") == V::Sent);
  CHECK(DockerIgnore::parse("**foo\n").context_verdict("a/foo") == V::Excluded);
  CHECK(DockerIgnore::parse("**foo\n", "--exclude", DockerIgnore::Syntax::Flag).excluded("xfoo"));
  CHECK_THROWS_AS(DockerIgnore::parse("a+b\n"), Error);
  CHECK_FALSE(DockerIgnore::parse("a+b\n", "--exclude", DockerIgnore::Syntax::Flag).excluded("aab"));
}
