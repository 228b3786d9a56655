// Front-end scaling benchmark: parse (+ type + plan) time for growing inputs, to show the
// cost is linear in the input size. Cases: N mixed instructions, one instruction made of
// many continuation lines, one big heredoc, ENV-heavy expansion, and oversized lines
// (which must fail fast with BuildKit's 64 KiB line error). Prints medians of 5 runs and
// ns per input byte; equal ns/byte across sizes means linear time. Every run is a fresh child
// process (see run_once); "MB peak" is its resident-set growth. Times are CPU time of this
// (single-threaded) process, not wall time: on a shared 2-core machine wall time mostly
// measures the neighbours, and the question here is how the work grows with the input.
//   bench_parser_bench [max_mb=10] [only]   (only: run just the cases whose label contains it)
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/dockerfile/parser.h"
#include "builder/plan/planner.h"
#include "oci/base/error.h"

namespace {

const char* g_only = nullptr;

double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// distinct: every ENV adds new names (the scope grows with the file: quadratic to plan,
// refused past the planner's budget); otherwise 20 names are reused (a bounded scope).
std::string mixed(std::size_t n, bool distinct = true) {
  std::string s = "ARG BASE=alpine\nFROM $BASE AS build\n";
  for (std::size_t i = 0; s.size() < n; ++i) {
    switch (i % 5) {
      case 0: s += "ENV V" + std::to_string(distinct ? i : i % 20) + "=\"value ${BASE:-x}\" W=2\n"; break;
      case 1: s += "RUN --mount=type=cache,target=/c echo step " + std::to_string(i) + " && true\n"; break;
      case 2: s += "COPY --chown=1:1 src/" + std::to_string(i) + " /dst/\n"; break;
      case 3: s += "LABEL k" + std::to_string(i) + "=v\n"; break;
      default: s += "WORKDIR /w/$V" + std::to_string(distinct ? i - 4 : (i - 4) % 20) + "\n"; break;
    }
  }
  return s;
}

std::string continuation(std::size_t n) {
  std::string s = "FROM a\nRUN echo \\\n";
  while (s.size() < n) s += "  some words on a continued line \\\n";
  return s + "  end\n";
}

std::string heredoc(std::size_t n) {
  std::string s = "FROM a\nRUN <<EOF\n";
  while (s.size() < n) s += "echo a line of a long heredoc script\n";
  return s + "EOF\n";
}

long rss_kb() {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

struct RunResult {
  double ms = 0;
  double peak_mb = 0;
  bool failed = false;
  char error[64] = {};
};

// One run in a fresh child process: a real cbuild invocation plans once, into memory it has
// never touched, and first-touch page faults are a large part of the cost on this VM. Timing
// repeated runs in one process would let small inputs reuse the heap of the run before while
// big ones (whose blocks glibc returns to the kernel) cannot, which is not a like-for-like
// comparison across sizes. Peak is the resident-set growth over the run.
RunResult run_once(const std::string& text, bool plan) {
  int fds[2];
  if (pipe(fds) != 0) {
    std::perror("pipe");
    std::exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (pid == 0) {
    close(fds[0]);
    RunResult r;
    long rss_before = rss_kb();
    double a = cpu_ms();
    try {
      if (plan) {
        cbuild::builder::PlanOptions o;
        o.build_platform = "linux/amd64";
        (void)cbuild::builder::plan_dockerfile(text, "Dockerfile", o);
      } else {
        (void)cbuild::builder::dockerfile::parse(text);
      }
    } catch (const cbuild::Error& e) {
      r.failed = true;
      std::snprintf(r.error, sizeof r.error, "%s", e.what());
    }
    r.ms = cpu_ms() - a;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    r.peak_mb = static_cast<double>(ru.ru_maxrss - rss_before) / 1024.0;
    ssize_t w = write(fds[1], &r, sizeof r);
    _exit(w == static_cast<ssize_t>(sizeof r) ? 0 : 1);
  }
  close(fds[1]);
  RunResult r;
  bool ok = read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!ok) {
    std::fprintf(stderr, "a benchmark run died (status %d)\n", status);
    std::exit(1);
  }
  return r;
}

void row(const char* name, const std::string& text, bool plan) {
  if (g_only && !std::strstr(name, g_only)) return;
  std::vector<RunResult> runs;
  for (int i = 0; i < 5; ++i) runs.push_back(run_once(text, plan));
  std::sort(runs.begin(), runs.end(), [](const RunResult& a, const RunResult& b) { return a.ms < b.ms; });
  const RunResult& r = runs[2];
  std::printf("%-34s %10zu B %10.2f ms cpu %8.1f ns/B %7.1f MB peak %s%s\n", name, text.size(), r.ms,
              r.ms * 1e6 / static_cast<double>(text.size()), r.peak_mb, r.failed ? "fails: " : "ok", r.error);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("all figures warm: the Dockerfile text is generated in memory, no I/O\n");
  std::size_t max_mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10;
  if (argc > 2) g_only = argv[2];
  for (std::size_t mb : {max_mb / 10, max_mb / 2, max_mb}) {
    if (mb == 0) continue;
    std::size_t n = mb << 20;
    std::string m = mixed(n);
    std::size_t instr = static_cast<std::size_t>(std::count(m.begin(), m.end(), '\n'));
    std::string label = "parse mixed (" + std::to_string(instr) + " instr)";
    row(label.c_str(), m, false);
    label = "plan  mixed, growing scope (" + std::to_string(instr) + ")";
    row(label.c_str(), m, true);
    std::string b = mixed(n, false);
    label = "plan  mixed, 20 ENV names (" + std::to_string(static_cast<std::size_t>(std::count(b.begin(), b.end(), '\n'))) + ")";
    row(label.c_str(), b, true);
    row("parse one continued instruction", continuation(n), false);
    row("parse one heredoc", heredoc(n), false);
  }
  std::string line = "FROM a\nRUN " + std::string(1 << 20, 'x') + "\n";
  row("parse 1 MiB line (over the limit)", line, false);
  std::string ok = "FROM a\nRUN " + std::string(65000, 'x') + "\n";
  row("parse 64 KB line (under the limit)", ok, false);
  return 0;
}
