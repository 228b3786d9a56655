// ChildProcess — owns a child process (pid + pidfd): the destructor kills it (SIGKILL) and
// reaps it unless wait() already did, so no code path can leak a running or zombie child.
// Move-only; not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>

#include "oci/base/unique_fd.h"

namespace cbuild::overlay::sys {

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, UniqueFd pidfd) noexcept : pid_(pid), pidfd_(std::move(pidfd)) {}
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const noexcept { return pid_; }
  int pidfd() const noexcept { return pidfd_.get(); }
  bool running() const noexcept { return pid_ > 0; }

  // Sends a signal (through the pidfd, so a recycled pid is never hit). Errors are ignored:
  // the process may just have exited.
  void signal(int sig) noexcept;
  // Blocks until it exits; returns the raw wait status. Throws on waitpid failure.
  int wait();
  // Waits up to `timeout` for it to exit (true) using poll on the pidfd.
  bool wait_for_exit(std::chrono::milliseconds timeout);

 private:
  void reset() noexcept;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

}  // namespace cbuild::overlay::sys
