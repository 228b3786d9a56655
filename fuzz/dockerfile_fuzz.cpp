// libFuzzer target over the Dockerfile front end: parser + dump, typing, planner, shell-word
// expansion (with and without the backtick escape) and .dockerignore patterns. Every input
// must end in a result or a cbuild::Error; anything else (crash, other exception, sanitizer
// report, hang) is a bug. Built and run by fuzz/run.sh, not by the CMake build.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "builder/dockerfile/instructions.h"
#include "builder/dockerfile/parser.h"
#include "builder/dockerfile/shell_words.h"
#include "builder/context/dockerignore.h"
#include "builder/plan/planner.h"
#include "oci/base/error.h"

namespace df = cbuild::builder::dockerfile;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    df::ParsedDockerfile tree = df::parse(text, "Dockerfile");
    std::string d = df::dump(tree);
    (void)d;
    std::vector<df::DockerfileWarning> w;
    (void)df::type_instructions(tree, w);
  } catch (const cbuild::Error&) {
  }
  try {
    cbuild::builder::PlanOptions o;
    o.build_platform = "linux/amd64";
    o.build_args = {{"A", "x"}, {"HTTP_PROXY", "p"}};
    (void)cbuild::builder::plan_dockerfile(text, "Dockerfile", o);
  } catch (const cbuild::Error&) {
  }
  static const std::map<std::string, std::string> env{{"A", "hello world"}, {"E", ""}, {"P", "a/b/c.d"}};
  static const df::EnvLookup lookup = df::env_lookup(env);
  for (char esc : {'\\', '`'}) {
    try {
      df::ShellWords sw(df::ShellWordsOptions{.escape = esc});
      (void)sw.process_word(text, lookup);
      (void)sw.process_words(text, lookup);
    } catch (const cbuild::Error&) {
    }
  }
  try {
    auto ig = cbuild::builder::DockerIgnore::parse(text);
    (void)ig.excluded("a/b/c.txt");
    (void)ig.excluded(text.substr(0, 64));
  } catch (const cbuild::Error&) {
  }
  return 0;
}
