#include "overlay/isolation.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "oci/base/error.h"
#include "overlay/user_namespace.h"

namespace cbuild::overlay {

namespace {

constexpr int kCapChown = 0;
constexpr int kCapFsetid = 4;
constexpr int kCapSysChroot = 18;
constexpr int kCapSysAdmin = 21;

std::uint64_t effective_caps() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  return 0;
}

// In a child, so this process stays where it is (unshare would move the caller, and a
// multi-threaded process cannot create a user namespace at all).
std::string try_userns() {
  int pp[2];
  if (::pipe2(pp, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pp[0]);
    ::close(pp[1]);
    return std::string("fork: ") + std::strerror(errno);
  }
  if (pid == 0) {
    int err = ::unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
    (void)!::write(pp[1], &err, sizeof err);
    ::_exit(0);
  }
  ::close(pp[1]);
  int err = 0;
  ssize_t n;
  do n = ::read(pp[0], &err, sizeof err);
  while (n < 0 && errno == EINTR);
  ::close(pp[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof err)) return "unshare(CLONE_NEWUSER): the probe died";
  return err == 0 ? "" : std::string("unshare(CLONE_NEWUSER): ") + std::strerror(err);
}

constexpr const char* kUsernsSettings =
    "allow user namespaces (docker run --security-opt seccomp=unconfined, or a profile allowing unshare; "
    "Kubernetes hostUsers: false; sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0)";

}  // namespace

IsolationRequest parse_isolation(std::string_view value, std::string_view flag) {
  if (value == "auto") return IsolationRequest::Auto;
  if (value == "userns") return IsolationRequest::Userns;
  if (value == "chroot") return IsolationRequest::Chroot;
  throw Error(ErrorKind::InvalidArgument,
              std::string(flag) + ": unknown isolation " + quote(value) + " (expected auto, userns or chroot)");
}

const char* to_string(Isolation level) noexcept { return level == Isolation::Chroot ? "chroot" : "userns"; }

IsolationProbe probe_isolation() {
  IsolationProbe p;
  p.uid = ::geteuid();
  std::uint64_t caps = effective_caps();
  p.cap_sys_admin = caps >> kCapSysAdmin & 1;
  p.cap_sys_chroot = caps >> kCapSysChroot & 1;
  p.cap_chown = caps >> kCapChown & 1;
  p.cap_fsetid = caps >> kCapFsetid & 1;
  // Root with CAP_SYS_ADMIN gets the userns level whatever the probe says, and chroot needs no
  // user namespace: the fork it costs is left out of every such build's start.
  if (p.uid == 0 && p.cap_sys_admin) return p;
  p.userns_error = try_userns();
  p.userns = p.userns_error.empty();
  return p;
}

bool writes_keep_setid() {
  return overlay_xattr_namespace() == XattrNamespace::Trusted && (effective_caps() >> kCapFsetid & 1);
}

IsolationChoice choose_isolation(IsolationRequest request, const IsolationProbe& probe, std::string_view source) {
  const std::string src(source);
  const bool privileged = probe.uid == 0 && probe.cap_sys_admin;
  const bool chroot_ok = probe.uid == 0 && probe.cap_sys_chroot && probe.cap_chown;
  std::string chroot_missing;
  if (probe.uid != 0) chroot_missing = "it runs as uid " + std::to_string(probe.uid) + ", not root";
  else if (!probe.cap_sys_chroot) chroot_missing = "it lacks CAP_SYS_CHROOT";
  else if (!probe.cap_chown) chroot_missing = "it lacks CAP_CHOWN";
  auto userns_choice = [&] {
    IsolationChoice c;
    c.level = Isolation::Userns;
    if (privileged) {
      c.reason = "userns: root with CAP_SYS_ADMIN, RUN steps run in new namespaces over overlay snapshots";
    } else {
      c.enter_userns = true;
      c.reason = probe.uid == 0 ? "userns: root without CAP_SYS_ADMIN, cbuild enters a user namespace for RUN "
                                  "namespaces and overlay snapshots"
                                : "userns: not root, cbuild enters a user namespace for RUN namespaces and overlay "
                                  "snapshots";
    }
    return c;
  };
  auto chroot_choice = [&](std::string why) {
    IsolationChoice c;
    c.level = Isolation::Chroot;
    c.reason = "chroot: " + why +
               "; snapshots are copied and diffed and RUN steps run in a chroot as this container's root, "
               "with the host's network and no new namespaces (slower, same image)";
    if (!probe.cap_fsetid)
      c.reason += "; without CAP_FSETID a RUN's chmod g+s of a file whose group it is not in is ignored by the "
                  "kernel (setuid/setgid bits a write clears are restored in the layer); docker's default "
                  "capabilities include CAP_FSETID";
    return c;
  };
  switch (request) {
    case IsolationRequest::Userns:
      if (privileged || probe.userns) return userns_choice();
      throw Error(ErrorKind::FailedPrecondition,
                  src + "=userns: this process may not create a user namespace (" + probe.userns_error +
                      ") and is not root with CAP_SYS_ADMIN; " + kUsernsSettings + ", or use --isolation=chroot");
    case IsolationRequest::Chroot:
      if (chroot_ok) return chroot_choice("asked for with " + src + "=chroot");
      throw Error(ErrorKind::FailedPrecondition,
                  src + "=chroot: needs root with CAP_SYS_CHROOT and CAP_CHOWN, but " + chroot_missing +
                      "; run cbuild as the container's root (docker's default capabilities are enough), or use "
                      "--isolation=userns where user namespaces are allowed");
    case IsolationRequest::Auto:
      break;
  }
  if (privileged || probe.userns) return userns_choice();
  if (chroot_ok) return chroot_choice("this process may not create user namespaces (" + probe.userns_error + ")");
  throw Error(ErrorKind::FailedPrecondition,
              "cannot isolate RUN steps: this process may not create user namespaces (" + probe.userns_error +
                  ") and cannot use chroot isolation (" + chroot_missing + "); " + kUsernsSettings +
                  ", or run cbuild as root in the container with --isolation=chroot");
}

}  // namespace cbuild::overlay
