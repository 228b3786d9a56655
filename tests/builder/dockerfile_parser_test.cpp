// Dockerfile parser (builder/dockerfile/parser.h): BuildKit's conformance data, read from
// $CBUILD_CONFORMANCE_DIR (tests/support/conformance_dir.h), plus our own cases for what the dump cannot show (heredocs, JSON-ness, line ranges).
#include "builder/dockerfile/parser.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "oci/base/fs.h"
#include "tests/support/conformance_dir.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using namespace cbuild::builder::dockerfile;
namespace fs = std::filesystem;

namespace {
std::string parser_dir(const std::string& conformance) { return conformance + "/buildkit/frontend/dockerfile/parser"; }

std::vector<fs::path> cases(const std::string& conformance, const std::string& sub) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(parser_dir(conformance) + "/" + sub))
    if (e.is_directory()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST_CASE("conformance: every positive testfile dumps exactly its result") {
  REQUIRE_CONFORMANCE_DIR(conformance);
  auto dirs = cases(conformance, "testfiles");
  REQUIRE(dirs.size() == 33);
  for (const auto& d : dirs) {
    CAPTURE(d.filename().string());
    std::string text = read_file(d / "Dockerfile");
    std::string expected = read_file(d / "result");
    ParsedDockerfile tree = parse(text, (d / "Dockerfile").string());
    CHECK(dump(tree) == expected);
  }
}

TEST_CASE("conformance: cbuild debug ast prints the same bytes and fails on negatives") {
  REQUIRE_CONFORMANCE_DIR(conformance);
  for (const auto& d : cases(conformance, "testfiles")) {
    CAPTURE(d.filename().string());
    auto r = test::run_cbuild({"debug", "ast", (d / "Dockerfile").string()});
    CHECK(r.exit_code == 0);
    CHECK(r.out == read_file(d / "result"));
  }
  auto neg = cases(conformance, "testfiles-negative");
  REQUIRE(neg.size() == 4);
  for (const auto& d : neg) {
    CAPTURE(d.filename().string());
    CHECK_THROWS_AS(parse(read_file(d / "Dockerfile")), DockerfileError);
    auto r = test::run_cbuild({"debug", "ast", (d / "Dockerfile").string()});
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    CHECK(r.err.rfind((d / "Dockerfile").string() + ":", 0) == 0);  // FILE:LINE: message
  }
}

TEST_CASE("conformance: line ranges of testfile-line") {
  REQUIRE_CONFORMANCE_DIR(conformance);
  ParsedDockerfile t = parse(read_file(parser_dir(conformance) + "/testfile-line/Dockerfile"));
  CHECK(t.range.start_line == 5);
  CHECK(t.range.end_line == 31);
  REQUIRE(t.instructions.size() == 3);
  CHECK(t.instructions[0].range.start_line == 5);
  CHECK(t.instructions[0].range.end_line == 5);
  CHECK(t.instructions[1].range.start_line == 11);
  CHECK(t.instructions[1].range.end_line == 12);
  CHECK(t.instructions[2].range.start_line == 17);
  CHECK(t.instructions[2].range.end_line == 31);
}

TEST_CASE("heredocs: bodies, delimiters, chomp, quoting, several per line, ONBUILD") {
  std::string df =
      "FROM busybox\n"
      "RUN <<EOF\n"
      "echo $HOME\n"
      "EOF\n"
      "RUN <<-\"END\" cat\n"
      "\tliteral $x\n"
      "\tEND\n"
      "COPY <<one.txt <<'two.txt' /dst/\n"
      "1\n"
      "one.txt\n"
      "2\n"
      "two.txt\n"
      "ONBUILD RUN 3<<X sh\n"
      "x\n"
      "X\n"
      "RUN [\"echo\", \"<<EOF\"]\n"
      "CMD done\n";
  ParsedDockerfile t = parse(df);
  REQUIRE(t.instructions.size() == 7);
  const Node& r1 = t.instructions[1];
  REQUIRE(r1.heredocs.size() == 1);
  CHECK(r1.heredocs[0].name == "EOF");
  CHECK(r1.heredocs[0].content == "echo $HOME\n");
  CHECK(r1.heredocs[0].expand);
  CHECK_FALSE(r1.heredocs[0].chomp);
  CHECK(r1.range.start_line == 2);
  CHECK(r1.range.end_line == 4);
  CHECK(r1.args == std::vector<std::string>{"<<EOF"});
  const Node& r2 = t.instructions[2];
  REQUIRE(r2.heredocs.size() == 1);
  CHECK(r2.heredocs[0].name == "END");
  CHECK(r2.heredocs[0].chomp);
  CHECK_FALSE(r2.heredocs[0].expand);
  CHECK(r2.heredocs[0].content == "\tliteral $x\n");
  const Node& c = t.instructions[3];
  REQUIRE(c.heredocs.size() == 2);
  CHECK(c.heredocs[0].name == "one.txt");
  CHECK(c.heredocs[0].content == "1\n");
  CHECK(c.heredocs[0].expand);
  CHECK(c.heredocs[1].name == "two.txt");
  CHECK(c.heredocs[1].content == "2\n");
  CHECK_FALSE(c.heredocs[1].expand);
  CHECK(c.range.end_line == 12);
  const Node& ob = t.instructions[4];
  REQUIRE(ob.heredocs.size() == 1);
  CHECK(ob.heredocs[0].fd == 3);
  CHECK(ob.heredocs[0].content == "x\n");
  CHECK(t.instructions[5].json);
  CHECK(t.instructions[5].heredocs.empty());
  CHECK(t.instructions[6].range.start_line == 17);
}

TEST_CASE("heredocs: an unterminated heredoc is a parse error naming the line") {
  try {
    parse("FROM a\nRUN <<EOF\necho hi\n", "df");
    FAIL("expected an error");
  } catch (const DockerfileError& e) {
    CHECK(e.line() == 2);
    CHECK(std::string(e.what()).rfind("df:2: ", 0) == 0);
    CHECK(std::string(e.what()).find("unterminated heredoc") != std::string::npos);
  }
}

TEST_CASE("CRLF, BOM, directives and escape") {
  ParsedDockerfile t = parse("\xEF\xBB\xBF# escape=`\r\nFROM a\r\nRUN echo \\x `\r\n  y\r\n");
  CHECK(t.directives.escape == '`');
  CHECK(dump(t) == "(from \"a\")\n(run \"echo \\\\x   y\")\n");
  CHECK_THROWS_AS(parse("# escape=x\nFROM a\n"), DockerfileError);
  CHECK_THROWS_AS(parse("# syntax=a\n# syntax=b\nFROM a\n"), DockerfileError);
  ParsedDockerfile s = parse("# Syntax = docker/dockerfile:1  \n#check=skip=all\nFROM a\n");
  CHECK(s.directives.syntax == "docker/dockerfile:1");
  CHECK(s.directives.check == "skip=all");
  // A directive after an instruction is just a comment.
  CHECK(parse("FROM a\n# escape=`\nRUN a \\\n b\n").directives.escape == '\\');
}

TEST_CASE("JSON form vs shell form, unknown instructions and empty continuation warnings") {
  ParsedDockerfile t = parse("FROM a\nCMD [\"a\\u00e9\", \"b\"]\nCMD ['a']\nFOO bar\nRUN a \\\n\n b\n", "D");
  CHECK(t.instructions[1].json);
  CHECK(t.instructions[1].args == std::vector<std::string>{"a\xC3\xA9", "b"});
  CHECK_FALSE(t.instructions[2].json);
  CHECK(dump(t.instructions[3]) == "foo \"\"");
  REQUIRE(t.warnings.size() == 1);
  CHECK(t.warnings[0].to_string().rfind("D:7: Empty continuation line", 0) == 0);
  CHECK_THROWS_AS(parse("CMD [1]\n"), DockerfileError);
  CHECK_THROWS_AS(parse("LABEL a=b c\n"), DockerfileError);
}

TEST_CASE("oversized lines fail cleanly; long inputs parse") {
  std::string big = "RUN " + std::string(kMaxLineLength, 'x') + "\n";
  CHECK_THROWS_WITH_AS(parse(big), doctest::Contains("max allowed size"), DockerfileError);
  std::string ok = "RUN " + std::string(kMaxLineLength - 4, 'x') + "\n";
  CHECK(parse(ok).instructions.size() == 1);
  std::string many;
  for (int i = 0; i < 100000; ++i) many += "ENV A" + std::to_string(i) + "=" + std::to_string(i) + "\n";
  ParsedDockerfile t = parse(many);
  CHECK(t.instructions.size() == 100000);
  CHECK(t.instructions.back().range.start_line == 100000);
  std::string nested = "ONBUILD ";
  for (int i = 0; i < 100; ++i) nested += "ONBUILD ";
  CHECK_THROWS_AS(parse(nested + "RUN x\n"), DockerfileError);
}
