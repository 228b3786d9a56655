#include "tests/support/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <regex>
#include <stdexcept>

#include <doctest/doctest.h>

#include "oci/base/unique_fd.h"
#include "tests/support/as_test_user.h"
#include "tests/support/test_caps.h"

extern char** environ;

namespace cbuild::test {

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input,
                          const std::vector<std::string>& extra_env) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) throw std::runtime_error("pipe");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (const auto& e : extra_env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  CommandResult r;
  std::size_t written = 0;
  int infd = in[1];
  if (input.empty()) { close(infd); infd = -1; }
  else fcntl(infd, F_SETFL, O_NONBLOCK);
  bool out_open = true, err_open = true;
  char buf[65536];
  signal(SIGPIPE, SIG_IGN);
  while (out_open || err_open) {
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out[0], POLLIN, 0};
    if (err_open) fds[n++] = {err[0], POLLIN, 0};
    if (infd >= 0) fds[n++] = {infd, POLLOUT, 0};
    if (poll(fds, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int k = 0; k < n; ++k) {
      if (!fds[k].revents) continue;
      if (fds[k].fd == infd) {
        ssize_t w = write(infd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 || written == input.size()) { close(infd); infd = -1; }
        continue;
      }
      ssize_t got = read(fds[k].fd, buf, sizeof buf);
      if (got <= 0) {
        if (fds[k].fd == out[0]) out_open = false;
        else err_open = false;
        continue;
      }
      (fds[k].fd == out[0] ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
    }
  }
  if (infd >= 0) close(infd);
  close(out[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

namespace {

// CBUILD_TEST_IMAGE_LOG (docs/contributing.md, "Refactors that must not change images"):
// appends "<test case> #<call> <image ID> <manifest digest>" for every image a cbuild run
// reports writing (calls counted within the test case), and pins SOURCE_DATE_EPOCH (unless
// the test sets it) so RUN steps do not stamp the clock. Two runs of a suite, before and after
// a change, then compare line by line.
void log_images(const std::string& path, const CommandResult& r) {
  static std::mutex mu;
  static std::string last_case;
  static int calls = 0;
  static const std::regex written(R"(writing image (sha256:[0-9a-f]{64}) \(manifest (sha256:[0-9a-f]{64})\))");
  const doctest::detail::TestCase* current = doctest::getContextOptions()->currentTest;
  const std::string test_case = current ? current->m_name : "(no test case)";
  std::lock_guard lock(mu);
  if (test_case != last_case) last_case = test_case, calls = 0;
  ++calls;
  std::string lines;
  for (const std::string* text : {&r.out, &r.err})
    for (std::sregex_iterator m(text->begin(), text->end(), written), end; m != end; ++m)
      lines += test_case + " #" + std::to_string(calls) + ' ' + (*m)[1].str() + ' ' + (*m)[2].str() + '\n';
  // One write (O_APPEND): another test binary may append to the same log at the same time.
  if (lines.empty()) return;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd || ::write(fd.get(), lines.data(), lines.size()) != static_cast<ssize_t>(lines.size()))
    throw std::runtime_error("cannot append to the image log " + path);
}

}  // namespace

std::vector<std::string> with_logged_epoch(std::vector<std::string> env) {
  if (!std::getenv("CBUILD_TEST_IMAGE_LOG")) return env;
  bool epoch_set = std::getenv("SOURCE_DATE_EPOCH") != nullptr;
  for (const auto& e : env) epoch_set = epoch_set || e.rfind("SOURCE_DATE_EPOCH=", 0) == 0;
  if (!epoch_set) env.insert(env.begin(), "SOURCE_DATE_EPOCH=1700000000");
  return env;
}

CommandResult run_cbuild(const std::vector<std::string>& args, const std::string& input,
                         const std::vector<std::string>& extra_env) {
  std::vector<std::string> argv{CBUILD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  const char* image_log = std::getenv("CBUILD_TEST_IMAGE_LOG");
  if (!image_log) return run_command(with_test_caps(as_test_user(argv, extra_env)), input, extra_env);
  const std::vector<std::string> env = with_logged_epoch(extra_env);
  CommandResult r = run_command(with_test_caps(as_test_user(argv, env)), input, env);
  log_images(image_log, r);
  return r;
}

}  // namespace cbuild::test
