// Shell-word expansion (builder/dockerfile/shell_words.h): BuildKit's envVarTest and
// wordsTest vectors read from $CBUILD_CONFORMANCE_DIR (tests/support/conformance_dir.h), plus our own cases.
#include "builder/dockerfile/shell_words.h"

#include <doctest/doctest.h>

#include <sstream>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "tests/support/conformance_dir.h"

using namespace cbuild;
using namespace cbuild::builder::dockerfile;

namespace {
std::string shell_dir(const std::string& conformance) { return conformance + "/buildkit/frontend/dockerfile/shell"; }

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n\v\f");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n\v\f");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}
}  // namespace

TEST_CASE("conformance: envVarTest (ProcessWord), Unix vectors") {
  REQUIRE_CONFORMANCE_DIR(conformance);
  std::map<std::string, std::string> env{{"PWD", "/home"}, {"SHELL", "bash"}, {"KOREAN", "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"}, {"NULL", ""}};
  EnvLookup lookup = env_lookup(env);
  ShellWords sw;
  std::istringstream in(read_file(shell_dir(conformance) + "/envVarTest"));
  std::string line;
  int run = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    line = trim(line);
    if (line.empty()) continue;
    auto f = split(line, '|');
    REQUIRE(f.size() == 3);
    std::string platform = trim(f[0]), source = trim(f[1]), expected = trim(f[2]);
    if (platform == "W") continue;
    ++run;
    CAPTURE(source);
    if (expected == "error") {
      CHECK_THROWS_AS(sw.process_word(source, lookup), Error);
    } else {
      std::string got;
      CHECK_NOTHROW(got = sw.process_word(source, lookup));
      CHECK(got == expected);
    }
  }
  CHECK(run >= 200);
  MESSAGE("envVarTest vectors run: " << run);
}

TEST_CASE("conformance: wordsTest (ProcessWords)") {
  REQUIRE_CONFORMANCE_DIR(conformance);
  std::vector<std::pair<std::string, std::string>> env;
  EnvLookup lookup = env_lookup(env);
  ShellWords sw;
  std::istringstream in(read_file(shell_dir(conformance) + "/wordsTest"));
  std::string line;
  int run = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    if (line.rfind("ENV ", 0) == 0) {
      std::string kv = line.substr(4);
      kv.erase(0, kv.find_first_not_of(' '));
      auto eq = kv.find('=');
      REQUIRE(eq != std::string::npos);
      env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
      continue;
    }
    auto f = split(line, '|');
    REQUIRE(f.size() == 2);
    std::string input = trim(f[0]);
    std::string expected = f[1];
    expected.erase(0, expected.find_first_not_of(' '));
    ++run;
    CAPTURE(input);
    if (expected == "error") {
      CHECK_THROWS_AS(sw.process_words(input, lookup), Error);
    } else {
      std::vector<std::string> got;
      CHECK_NOTHROW(got = sw.process_words(input, lookup));
      CHECK(got == split(expected, ','));
    }
  }
  CHECK(run >= 20);
  MESSAGE("wordsTest vectors run: " << run);
}

TEST_CASE("expansion: modifiers, patterns, escape character, used-variable tracking") {
  std::map<std::string, std::string> env{{"V", "a/b/c.tar.gz"}, {"E", ""}, {"N", "line1\nline2"}};
  EnvLookup lookup = env_lookup(env);
  ShellWords sw;
  CHECK(sw.process_word("${V%.*}", lookup) == "a/b/c.tar");
  CHECK(sw.process_word("${V%%.*}", lookup) == "a/b/c");
  CHECK(sw.process_word("${V#*/}", lookup) == "b/c.tar.gz");
  CHECK(sw.process_word("${V##*/}", lookup) == "c.tar.gz");
  CHECK(sw.process_word("${V/\\//_}", lookup) == "a_b/c.tar.gz");
  CHECK(sw.process_word("${V//\\//_}", lookup) == "a_b_c.tar.gz");
  CHECK(sw.process_word("${E:-d}${E-d}${U+x}${V:+y}", lookup) == "dy");
  CHECK(sw.process_word("${N#*e}", lookup) == "1\nline2");
  CHECK_THROWS_WITH_AS(sw.process_word("${U:?must be set}", lookup), doctest::Contains("U: must be set"), Error);
  CHECK_THROWS_AS(sw.process_word("${V#\\q}", lookup), Error);
  // An operand cut short by the end of the word names what is missing, as the shell does.
  CHECK_THROWS_WITH_AS(sw.process_word("${V:-abc", lookup), doctest::Contains("missing '}'"), Error);
  CHECK_THROWS_WITH_AS(sw.process_word("${V/abc", lookup), doctest::Contains("missing '/' in ${}"), Error);
  CHECK_THROWS_WITH_AS(sw.process_word("${V/a/b", lookup), doctest::Contains("missing '}'"), Error);
  ShellWords backtick(ShellWordsOptions{.escape = '`'});
  CHECK(backtick.process_word("a`$V\\b", lookup) == "a$V\\b");
  ExpandResult r = sw.expand("$V ${U:-x}", lookup);
  CHECK(r.matched == std::set<std::string>{"V"});
  CHECK(r.unmatched == std::set<std::string>{"U"});
  ShellWords skip(ShellWordsOptions{.skip_unset_env = true});
  CHECK(skip.process_word("$U ${U} ${U:-w} $V", lookup) == "$U ${U} ${U:-w} a/b/c.tar.gz");
}

TEST_CASE("expansion: hostile input fails cleanly") {
  std::map<std::string, std::string> env{{"A", std::string(2000, 'a')}};
  EnvLookup lookup = env_lookup(env);
  ShellWords sw;
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += "${A:-";
  CHECK_THROWS_AS(sw.process_word(deep, lookup), Error);
  CHECK(sw.process_word("${A//*a*a*a*a*b/x}", lookup) == std::string(2000, 'a'));
  CHECK(sw.process_word("${A%%a*a*a}", lookup).empty());
}
