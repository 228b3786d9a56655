// .dockerignore (builder/context/dockerignore.h) with patternmatcher semantics, and the context walk
// that applies it (builder/context/context.h).
#include "builder/context/dockerignore.h"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include "builder/context/context.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"

using namespace cbuild;
using namespace cbuild::builder;

TEST_CASE("dockerignore: reading (comments, blanks, !, leading /, trailing /, cleaning)") {
  auto d = DockerIgnore::parse("\xEF\xBB\xBF# comment\n\n  /abs/  \n!  keep\n./a/../b\n #x\n");
  CHECK(d.patterns() == std::vector<std::string>{"abs", "!keep", "b", "#x"});
  CHECK(d.has_exceptions());
  CHECK_THROWS_AS(DockerIgnore::parse("!\n"), Error);
  CHECK_THROWS_AS(DockerIgnore::parse("[a-\n"), Error);
  CHECK_FALSE(DockerIgnore().excluded("anything"));
}

TEST_CASE("dockerignore: matching like patternmatcher.MatchesOrParentMatches") {
  auto d = DockerIgnore::parse("*.go\ndir/\n!dir/keep.txt\n**/*.md\n!README.md\na?c\n[x-z].txt\ndocs/**/*.tmp\n/root-only\n");
  CHECK(d.excluded("main.go"));
  CHECK_FALSE(d.excluded("src/main.go"));       // * does not cross /
  CHECK(d.excluded("x.go/inner"));             // a matching parent excludes children
  CHECK(d.excluded("dir"));
  CHECK(d.excluded("dir/a/b"));
  CHECK_FALSE(d.excluded("dir/keep.txt"));     // exception after the directory rule
  CHECK(d.excluded("a/b/c.md"));
  CHECK(d.excluded("NOTES.md"));
  CHECK_FALSE(d.excluded("README.md"));
  CHECK(d.excluded("abc"));
  CHECK_FALSE(d.excluded("a/c"));
  CHECK(d.excluded("y.txt"));
  CHECK_FALSE(d.excluded("w.txt"));
  CHECK(d.excluded("docs/x.tmp"));
  CHECK(d.excluded("docs/a/b/x.tmp"));
  CHECK_FALSE(d.excluded("other/docs/x.tmp"));
  CHECK(d.excluded("root-only"));
  CHECK(d.excluded("./root-only/x"));
  CHECK_FALSE(d.excluded("sub/root-only"));
  auto all = DockerIgnore::parse("**\n!src\n");
  CHECK(all.excluded("anything/at/all"));
  CHECK_FALSE(all.excluded("src"));
  auto pre = DockerIgnore::parse("build/**\n**/node_modules\n");
  CHECK(pre.excluded("build/x"));
  CHECK_FALSE(pre.excluded("build"));
  CHECK(pre.excluded("node_modules/x"));
  CHECK(pre.excluded("a/b/node_modules"));
  // Last match wins, in both directions.
  auto order = DockerIgnore::parse("!a.txt\n*.txt\n");
  CHECK(order.excluded("a.txt"));
}

TEST_CASE("context: walk applies the ignore file; Dockerfile.dockerignore takes precedence") {
  TempDir dir;
  auto root = dir.path();
  std::filesystem::create_directories(root / "src/sub");
  std::filesystem::create_directories(root / "node_modules/pkg");
  std::filesystem::create_directories(root / "logs");
  write_file_atomic(root / "src/a.c", "a");
  write_file_atomic(root / "src/sub/b.c", "b");
  write_file_atomic(root / "src/sub/b.o", "o");
  write_file_atomic(root / "node_modules/pkg/index.js", "x");
  write_file_atomic(root / "logs/keep.log", "k");
  write_file_atomic(root / "logs/drop.log", "d");
  write_file_atomic(root / "Dockerfile", "FROM a\n");
  REQUIRE(symlink("src/a.c", (root / "link").c_str()) == 0);
  write_file_atomic(root / ".dockerignore", "node_modules\n**/*.o\nlogs\n!logs/keep.log\n");
  auto ctx = BuildContext::read(root, DockerIgnore::load(root, root / "Dockerfile"));
  std::vector<std::string> paths;
  for (const auto& e : ctx.entries()) paths.push_back(e.path);
  // logs/ is sent itself since an exception names something below it (docker's client does so).
  CHECK(paths == std::vector<std::string>{".dockerignore", "Dockerfile", "link", "logs", "logs/keep.log", "src",
                                          "src/a.c", "src/sub", "src/sub/b.c"});
  REQUIRE(ctx.find("link"));
  CHECK(S_ISLNK(ctx.find("link")->st.st_mode));
  CHECK(ctx.find("link")->link_target == "src/a.c");
  CHECK(ctx.find("./src/a.c")->st.st_size == 1);
  CHECK(ctx.find("node_modules") == nullptr);
  CHECK(ctx.excluded_predicate()("node_modules/pkg/index.js"));
  // A Dockerfile-specific ignore file replaces .dockerignore.
  write_file_atomic(root / "Dockerfile.dockerignore", "src\n");
  auto ig = DockerIgnore::load(root, root / "Dockerfile");
  CHECK(ig.source() == (root / "Dockerfile.dockerignore").string());
  CHECK(ig.excluded("src/a.c"));
  CHECK_FALSE(ig.excluded("node_modules"));
  CHECK_THROWS_AS(BuildContext::read(root / "missing", ig), Error);
}
