#include "tests/support/background_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/as_test_user.h"
#include "tests/support/run_command.h"
#include "tests/support/test_caps.h"

namespace cbuild::test {

namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

BackgroundCommand::BackgroundCommand(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env) {
  std::string out = (files_.path() / "stdout").string(), err = (files_.path() / "stderr").string();
  std::vector<std::string> env = extra_env;  // kept alive for putenv in the child
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    int in = ::open("/dev/null", O_RDONLY);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || o < 0 || e < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    for (auto& kv : env) ::putenv(kv.data());
    // The test runner may have blocked or ignored signals; the program gets the defaults.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also from here, so signal_group() cannot race the child's own call
}

BackgroundCommand BackgroundCommand::cbuild(const std::vector<std::string>& args, const std::vector<std::string>& extra_env) {
  std::vector<std::string> argv{CBUILD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  // The same clock as run_cbuild's, so a test's background and foreground builds agree.
  const std::vector<std::string> env = with_logged_epoch(extra_env);
  return BackgroundCommand(with_test_caps(as_test_user(argv, env)), env);
}

BackgroundCommand::BackgroundCommand(BackgroundCommand&& o) noexcept
    : files_(std::move(o.files_)), pid_(o.pid_), status_(o.status_) {
  o.pid_ = -1;
}

BackgroundCommand::~BackgroundCommand() {
  if (pid_ <= 0 || status_) return;
  ::kill(-pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
}

std::string BackgroundCommand::out() const { return slurp(files_.path() / "stdout"); }
std::string BackgroundCommand::err() const { return slurp(files_.path() / "stderr"); }

bool BackgroundCommand::wait_for_err(const std::vector<std::string>& needles, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::string e = err();
    if (std::all_of(needles.begin(), needles.end(), [&](const std::string& n) { return e.find(n) != std::string::npos; }))
      return true;
    if (status_ || std::chrono::steady_clock::now() >= until) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void BackgroundCommand::signal_group(int signo) {
  if (!status_) ::kill(-pid_, signo);
}

std::optional<int> BackgroundCommand::wait(std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!status_) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    if (r < 0 && errno != EINTR) throw std::runtime_error("waitpid");
    if (std::chrono::steady_clock::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

std::vector<std::string> mounts_mentioning(const std::string& needle) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

std::vector<std::string> processes_mentioning(const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    if (std::stoi(name) == ::getpid()) continue;
    std::string cmd = slurp(it->path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(needle) != std::string::npos) out.push_back(name + ": " + cmd);
  }
  return out;
}

std::vector<std::string> dir_names(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) out.push_back(it->path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cbuild::test
