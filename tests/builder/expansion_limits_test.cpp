// Bounded word expansion (builder/dockerfile/shell_words.h): an expansion bomb ends in one
// error naming the Dockerfile line, quickly and in bounded memory, through the planner and
// through the real `cbuild check` and `cbuild build`.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>

#include "builder/dockerfile/shell_words.h"
#include "builder/plan/planner.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace fs = std::filesystem;
using namespace cbuild;
namespace df = cbuild::builder::dockerfile;

namespace {

// ARG A0=x, then each A<i> twice A<i-1>: A<i> has 2^i characters.
std::string bomb(int lines, bool global) {
  std::string t = global ? "" : "FROM scratch\n";
  t += "ARG A0=x\n";
  for (int i = 1; i < lines; ++i)
    t += "ARG A" + std::to_string(i) + "=${A" + std::to_string(i - 1) + "}${A" + std::to_string(i - 1) + "}\n";
  if (global) t += "FROM scratch\n";
  return t + "RUN true\n";
}

std::string plan_error(const std::string& text) {
  try {
    builder::PlanOptions o;
    o.build_platform = "linux/amd64";
    (void)builder::plan_dockerfile(text, "Dockerfile", o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Measured {
  int exit_code = -1;
  std::string err;
  long max_rss_kib = 0;
  double seconds = 0;
};

// Runs the cbuild binary with wait4(), which reports that one child's peak RSS. A CPU-time
// limit makes an unbounded expansion end (SIGXCPU) instead of hanging the suite.
Measured run_measured(const std::vector<std::string>& args, const fs::path& err_file) {
  std::vector<std::string> argv{CBUILD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (devnull < 0 || err < 0) ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(err, 2);
    struct rlimit cpu {60, 60};
    ::setrlimit(RLIMIT_CPU, &cpu);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  REQUIRE(::wait4(pid, &status, 0, &ru) == pid);
  Measured m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m.max_rss_kib = ru.ru_maxrss;
  m.err = read_file(err_file);
  return m;
}

}  // namespace

TEST_CASE("shell words: one expanded word is bounded, and so is all the work sharing a budget") {
  const std::string big(5u << 20, 'y');
  std::map<std::string, std::string> env{{"B", big}};
  df::ShellWords sw;
  CHECK(sw.process_word("${B}", df::env_lookup(env)).size() == big.size());
  // Two copies exceed kMaxExpandedWord (8 Mi characters).
  try {
    (void)sw.process_word("${B}${B}", df::env_lookup(env));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("exceeds the limit of 8388608 characters") != std::string::npos);
  }
  // A replacement that multiplies the value is bounded too (each 'y' becomes "yy").
  try {
    (void)sw.process_word("${B//y/yy}", df::env_lookup(env));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("exceeds the limit of 8388608 characters") != std::string::npos);
  }
  // A shared budget is drawn down across calls.
  df::ExpansionBudget budget(12u << 20);
  df::ShellWords shared(df::ShellWordsOptions{.budget = &budget});
  CHECK(shared.process_word("${B}", df::env_lookup(env)).size() == big.size());
  try {
    (void)shared.process_word("${B}", df::env_lookup(env));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("expansion work of the Dockerfile exceeds its limit") != std::string::npos);
  }
}

TEST_CASE("shell words: a wildcard pattern over a long value ends in an error, not a hang") {
  std::map<std::string, std::string> env{{"L", std::string(1u << 20, 'a')}};
  df::ShellWords sw;
  auto start = std::chrono::steady_clock::now();
  try {
    // Shortest-prefix matching of "*b" tries every end for every start: quadratic in the value.
    (void)sw.process_word("${L/*b/x}", df::env_lookup(env));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("exceeds its limit") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("planner: the doubling-ARG bomb fails at the line that exceeds the word limit") {
  // A23 has 2^23 = 8 Mi characters (the limit), A24 twice that: line 25 (globals) / 26 (stage).
  std::string e = plan_error(bomb(40, true));
  CHECK_MESSAGE(e.find("Dockerfile:25: ") == 0, e);
  CHECK_MESSAGE(e.find("exceeds the limit of 8388608 characters") != std::string::npos, e);
  e = plan_error(bomb(40, false));
  CHECK_MESSAGE(e.find("Dockerfile:26: ARG: ") == 0, e);
  // Many huge values, each within the word limit, exhaust the Dockerfile's budget instead.
  std::string wide = "FROM scratch\nARG A0=x\n";
  for (int i = 1; i <= 22; ++i)
    wide += "ARG A" + std::to_string(i) + "=${A" + std::to_string(i - 1) + "}${A" + std::to_string(i - 1) + "}\n";
  for (int i = 0; i < 200; ++i) wide += "ARG C" + std::to_string(i) + "=${A22}\n";
  e = plan_error(wide);
  CHECK_MESSAGE(e.find("Dockerfile:") == 0, e);
  CHECK_MESSAGE((e.find("expansion work of the Dockerfile exceeds") != std::string::npos ||
                 e.find("too large to plan") != std::string::npos),
                e);
}

TEST_CASE("cbuild check and build: the expansion bomb ends within 10 s, in bounded memory, naming the line") {
  TempDir dir;
  fs::create_directories(dir.path() / "ctx");
  std::ofstream(dir.path() / "ctx/Dockerfile") << bomb(40, false);
  Measured c = run_measured({"check", (dir.path() / "ctx/Dockerfile").string()}, dir.path() / "check.err");
  CHECK(c.exit_code == 1);
  CHECK_MESSAGE(c.err.find("Dockerfile:26: ARG: failed to process") != std::string::npos, c.err);
  CHECK_MESSAGE(c.err.find("exceeds the limit of 8388608 characters") != std::string::npos, c.err);
  CHECK(c.seconds < 10);
  CHECK_MESSAGE(c.max_rss_kib < 1024 * 1024, "max RSS " << c.max_rss_kib << " KiB");

  Measured b = run_measured({"--root", (dir.path() / "store").string(), "--progress=plain",
                             (dir.path() / "ctx").string()},
                            dir.path() / "build.err");
  CHECK(b.exit_code == 1);
  CHECK_MESSAGE(b.err.find("Dockerfile:26: ARG: failed to process") != std::string::npos, b.err);
  CHECK(b.err.find("bad_alloc") == std::string::npos);
  CHECK(b.seconds < 10);
  CHECK_MESSAGE(b.max_rss_kib < 1024 * 1024, "max RSS " << b.max_rss_kib << " KiB");
}
