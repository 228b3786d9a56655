// A program (the cbuild binary by default) running in the background, for tests that act while
// it runs: wait until its stderr shows something, send it a signal as a terminal would, then
// wait for it with a deadline — a regression that hangs fails the test instead of hanging it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "oci/base/fs.h"

namespace cbuild::test {

class BackgroundCommand {
 public:
  // Starts `argv` (argv[0] searched in PATH unless it has '/') in its own process group, with
  // stdout and stderr going to files and `extra_env` ("K=V") added to the environment.
  explicit BackgroundCommand(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {});
  // Starts the cbuild binary built alongside the tests with `args` (as run_cbuild does:
  // CBUILD_TEST_AS_USER, CBUILD_TEST_CAPS).
  static BackgroundCommand cbuild(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {});
  BackgroundCommand(BackgroundCommand&&) noexcept;
  BackgroundCommand& operator=(BackgroundCommand&&) = delete;
  // Kills the whole group (SIGKILL) and reaps it if it is still running.
  ~BackgroundCommand();

  pid_t pid() const noexcept { return pid_; }
  std::string out() const;
  std::string err() const;

  // Waits until stderr contains every one of `needles`; false on timeout or if the program
  // exited first.
  bool wait_for_err(const std::vector<std::string>& needles, std::chrono::milliseconds timeout);
  // Sends `signo` to the process group, as Ctrl-C in a terminal does (the program and every
  // child that did not leave the group get it).
  void signal_group(int signo);
  // The exit status (128+N when killed by signal N), or nullopt when it is still running after
  // `timeout` (it is then left running; the destructor kills it).
  std::optional<int> wait(std::chrono::milliseconds timeout);

 private:
  TempDir files_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Lines of /proc/self/mountinfo that mention `needle` (mount point or options, e.g. a store
// root that overlay lowerdirs point into).
std::vector<std::string> mounts_mentioning(const std::string& needle);
// "PID: cmdline" of every process other than this one whose command line contains `needle`.
std::vector<std::string> processes_mentioning(const std::string& needle);
// The names in `dir` (empty when it is missing).
std::vector<std::string> dir_names(const std::filesystem::path& dir);

}  // namespace cbuild::test
