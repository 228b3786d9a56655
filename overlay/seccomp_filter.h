// The sandbox's seccomp filter — the system calls a RUN command may make, the same policy as
// docker's default profile (docs/security.md lists the classes and the differences).
//
//   const overlay::SeccompFilter& f = overlay::default_seccomp_filter();  // built once
//   … after clone, in the child: prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, f.program())
//
// The policy is an allowlist: a system call that is not allowed fails with EPERM; one whose
// number is above every call the policy names (a call newer than the list, or no call at all)
// and clone3 fail with ENOSYS instead, so a libc falls back to the older call (clone3 → clone,
// fchmodat2 → fchmodat). Conditional rules: clone only without namespace flags, socket never
// with AF_VSOCK, personality only with the values docker allows. What needs a capability the
// sandbox never grants (CAP_SYS_ADMIN: mount, unshare, setns, bpf…; CAP_SYS_MODULE,
// CAP_SYS_TIME, CAP_SYS_BOOT, CAP_SYSLOG, CAP_SYS_PTRACE's kcmp/pidfd_getfd …) is denied here as
// well, as docker does for a container without those capabilities. The filter covers the
// native architecture and the 32-bit ones a 64-bit kernel also runs (x86 and x32 on x86_64,
// arm on aarch64); other architectures' calls kill the process.
//
// The BPF program is compiled with libseccomp once per process, on first use, in the thread
// that calls (never in the child: it allocates). program() points into memory that lives
// until the process exits, so a child cloned from any thread can load it with one system call.
// Thread-safe. Throws cbuild::Error when libseccomp fails to build the program.
#pragma once

#include <linux/filter.h>

#include <vector>

namespace cbuild::overlay {

class SeccompFilter {
 public:
  // The program for PR_SET_SECCOMP / seccomp(SECCOMP_SET_MODE_FILTER).
  const sock_fprog* program() const noexcept { return &prog_; }
  // How many BPF instructions it has (for tests and diagnostics).
  std::size_t size() const noexcept { return code_.size(); }

  explicit SeccompFilter(std::vector<sock_filter> code);
  SeccompFilter(const SeccompFilter&) = delete;
  SeccompFilter& operator=(const SeccompFilter&) = delete;

 private:
  std::vector<sock_filter> code_;
  sock_fprog prog_{};
};

const SeccompFilter& default_seccomp_filter();

}  // namespace cbuild::overlay
