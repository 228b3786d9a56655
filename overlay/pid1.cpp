// The sandbox's PID 1: a few system calls, no allocation (it runs after clone).
//
// Why not exec the command as PID 1 directly: the kernel drops signals to a namespace's init
// that it has no handler for, so `kill -TERM` would do nothing to most programs, and orphans
// re-parented to PID 1 would stay zombies (bazel linux-sandbox-pid1, tini, docker --init).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "overlay/internal/child_plan.h"

namespace cbuild::overlay::internal {

void pid1_signal_set(sigset_t* out) noexcept {
  sigemptyset(out);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaddset(out, s);
}

void pid1_main(pid_t main_pid, int status_fd) noexcept {
  sigset_t set;
  pid1_signal_set(&set);
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&set, &info);
    if (sig < 0) continue;  // EINTR
    if (sig != SIGCHLD) {
      ::kill(main_pid, sig);
      continue;
    }
    // Reap everything that has exited; several SIGCHLDs may have merged into one.
    for (;;) {
      int status = 0;
      pid_t p = ::waitpid(-1, &status, WNOHANG);
      if (p <= 0) break;
      if (p != main_pid) continue;
      // The command is done: report its raw status; leaving kills the rest of the namespace.
      ssize_t w;
      do w = ::write(status_fd, &status, sizeof status);
      while (w < 0 && errno == EINTR);
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      ::_exit(code);
    }
  }
}

}  // namespace cbuild::overlay::internal
