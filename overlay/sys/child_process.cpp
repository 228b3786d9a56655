#include "overlay/sys/child_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "oci/base/error.h"

namespace cbuild::overlay::sys {

ChildProcess::ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_), pidfd_(std::move(o.pidfd_)) { o.pid_ = -1; }

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    reset();
    pid_ = o.pid_;
    pidfd_ = std::move(o.pidfd_);
    o.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() { reset(); }

void ChildProcess::reset() noexcept {
  if (pid_ <= 0) return;
  signal(SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  pidfd_ = UniqueFd();
}

void ChildProcess::signal(int sig) noexcept {
  if (pid_ <= 0) return;
  if (pidfd_.get() >= 0) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
  else ::kill(pid_, sig);
}

int ChildProcess::wait() {
  int status = 0;
  for (;;) {
    if (::waitpid(pid_, &status, 0) >= 0) break;
    if (errno != EINTR) throw_errno("waitpid", std::to_string(pid_));
  }
  pid_ = -1;
  pidfd_ = UniqueFd();
  return status;
}

bool ChildProcess::wait_for_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return true;
  pollfd p{pidfd_.get(), POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r < 0 && errno != EINTR) throw_errno("poll pidfd", std::to_string(pid_));
  return r > 0;
}

}  // namespace cbuild::overlay::sys
