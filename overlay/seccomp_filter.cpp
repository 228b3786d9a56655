// The sandbox's seccomp policy, written as lists by what the calls do, and compiled to BPF with
// libseccomp. The policy follows docker's default profile (moby profiles/seccomp) for a
// container holding docker's default capabilities; docs/security.md explains the classes.

#include "overlay/seccomp_filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "oci/base/error.h"
#include "oci/base/unique_fd.h"

namespace cbuild::overlay {
namespace {

// Calls every build step may need, allowed whatever their arguments. A name a given
// architecture lacks (the *32 and *_time64 variants exist on 32-bit ones only, arch_prctl on
// x86_64 only) simply has no rule there.
constexpr const char* kAllowed[] = {
    // Processes: start, wait, identify, end.
    "execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "restart_syscall", "getpid", "getppid", "gettid", "getpgid", "getpgrp", "getsid", "setpgid", "setsid",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "set_thread_area", "get_thread_area",
    "arch_prctl", "modify_ldt", "prctl", "seccomp", "uname", "sysinfo", "times", "getrusage", "getcpu",
    "getrlimit", "setrlimit", "ugetrlimit", "prlimit64", "getpriority", "setpriority", "ioprio_get",
    "ioprio_set", "membarrier", "getrandom", "pidfd_open", "pidfd_send_signal", "process_mrelease",
    // Debugging one's own processes (the kernel still checks ptrace access; CAP_SYS_PTRACE is
    // never granted and PID 1 is not dumpable). Docker allows these from kernel 4.8 on.
    "ptrace", "process_vm_readv", "process_vm_writev",
    // Credentials (checked by the kernel against the capabilities held).
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid", "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid", "capget", "capset",
    "getuid32", "geteuid32", "getgid32", "getegid32", "getresuid32", "getresgid32", "getgroups32", "setuid32",
    "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32", "setgroups32", "setfsuid32",
    "setfsgid32",
    // Signals.
    "rt_sigaction", "rt_sigprocmask", "rt_sigpending", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "sigaltstack", "sigprocmask", "sigreturn",
    "signalfd", "signalfd4", "kill", "tkill", "tgkill", "pause", "alarm",
    // Memory.
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock", "mlock2",
    "mlockall", "munlock", "munlockall", "remap_file_pages", "memfd_create", "memfd_secret", "pkey_alloc",
    "pkey_free", "pkey_mprotect",
    // Files and directories.
    "open", "openat", "openat2", "creat", "close", "close_range", "read", "write", "readv", "writev", "pread64",
    "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "lseek", "_llseek", "dup", "dup2", "dup3", "fcntl",
    "fcntl64", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "fallocate", "truncate",
    "truncate64", "ftruncate", "ftruncate64", "fadvise64", "fadvise64_64", "readahead", "sendfile", "sendfile64",
    "splice", "tee", "vmsplice", "copy_file_range", "access", "faccessat", "faccessat2", "stat", "stat64", "lstat",
    "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx", "statfs", "statfs64", "fstatfs",
    "fstatfs64", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "mknod", "mknodat",
    "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "chown32",
    "fchown32", "lchown32", "umask", "utime", "utimes", "utimensat", "utimensat_time64", "futimesat",
    "name_to_handle_at", "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
    "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "ioctl",
    // chroot needs CAP_SYS_CHROOT, which docker's default set holds.
    "chroot",
    // Waiting for events; asynchronous I/O.
    "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old", "epoll_pwait", "epoll_pwait2",
    "eventfd", "eventfd2", "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    "fanotify_mark", "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "io_uring_setup", "io_uring_enter", "io_uring_register",
    // Time and timers (setting the clock needs CAP_SYS_TIME: adjtimex only reads without it).
    "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "clock_nanosleep",
    "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time", "adjtimex", "clock_adjtime",
    "clock_adjtime64", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
    // Scheduling and futexes.
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr", "sched_getparam",
    "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64", "futex", "futex_time64",
    "futex_waitv",
    // Inter-process communication (System V and POSIX objects live in the run's IPC namespace).
    "pipe", "pipe2", "ipc", "msgget", "msgctl", "msgsnd", "msgrcv", "semget", "semctl", "semop", "semtimedop",
    "semtimedop_time64", "shmget", "shmctl", "shmat", "shmdt", "mq_open", "mq_unlink", "mq_notify",
    "mq_getsetattr", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64",
    // Sockets (socket itself is conditional, below).
    "socketpair", "socketcall", "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
    "getsockopt", "setsockopt", "shutdown", "send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom",
    "recvmsg", "recvmmsg", "recvmmsg_time64",
    // Unprivileged self-restriction.
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    // 32-bit ARM's own calls.
    "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls",
};

// Not allowed, and named only so that the ENOSYS cut-off (above the highest number the policy
// names) lies above them: they exist, so they must answer EPERM like docker's, not ENOSYS.
constexpr const char* kDeniedKnown[] = {
    // CAP_SYS_ADMIN: mounts, namespaces, host names, BPF, perf, quotas, fanotify, syslog.
    "mount", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "pivot_root", "unshare", "setns", "sethostname", "setdomainname", "bpf", "perf_event_open",
    "quotactl", "quotactl_fd", "fanotify_init", "lookup_dcookie", "syslog",
    // Keyrings (not namespaced).
    "add_key", "request_key", "keyctl",
    // CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_PACCT, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYS_TTY_CONFIG.
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "acct", "iopl",
    "ioperm", "settimeofday", "stime", "clock_settime", "clock_settime64", "vhangup",
    // CAP_SYS_PTRACE's extras, CAP_SYS_NICE's memory policies, CAP_DAC_READ_SEARCH's handles.
    "kcmp", "pidfd_getfd", "process_madvise", "get_mempolicy", "set_mempolicy", "mbind",
    "set_mempolicy_home_node", "move_pages", "migrate_pages", "open_by_handle_at",
    // Obsolete or host-wide.
    "userfaultfd", "swapon", "swapoff", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old",
};

// personality(2) values docker allows: Linux, 32-bit Linux, with or without UNAME26, and the
// query (0xffffffff). Anything else (e.g. ADDR_NO_RANDOMIZE) is EPERM.
constexpr scmp_datum_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

constexpr scmp_datum_t kNamespaceFlags =
    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

struct CtxDeleter {
  void operator()(void* c) const noexcept { seccomp_release(c); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

[[noreturn]] void fail(const std::string& what, int rc) {
  throw Error(ErrorKind::Internal, "seccomp: " + what + ": " + std::strerror(-rc), -rc);
}

void check(int rc, const std::string& what) {
  if (rc < 0) fail(what, rc);
}

// The architectures whose calls the filter judges: the native one and the 32-bit ABIs the
// same kernel runs, as docker does.
std::vector<std::uint32_t> arches() {
  std::uint32_t native = seccomp_arch_native();
  std::vector<std::uint32_t> out{native};
  if (native == SCMP_ARCH_X86_64) out.insert(out.end(), {SCMP_ARCH_X86, SCMP_ARCH_X32});
  if (native == SCMP_ARCH_AARCH64) out.push_back(SCMP_ARCH_ARM);
  return out;
}

// rule_add on a name: skipped when this libseccomp does not know the call at all; libseccomp
// itself leaves out the architectures that lack it.
void add(void* ctx, std::uint32_t action, const char* name, unsigned n = 0, const scmp_arg_cmp* cmp = nullptr) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return;
  int rc = seccomp_rule_add_array(ctx, action, nr, n, cmp);
  // -EACCES: the rule's action equals the default (a denied name) — nothing to add.
  if (rc < 0 && rc != -EACCES) fail(std::string("rule for ") + name, rc);
}

std::vector<sock_filter> export_bpf(void* ctx) {
  int fd = ::memfd_create("cbuild-seccomp", MFD_CLOEXEC);
  if (fd < 0) throw_errno("seccomp: memfd_create", "");
  UniqueFd mem(fd);
  check(seccomp_export_bpf(ctx, fd), "export the BPF program");
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
    throw Error(ErrorKind::Internal, "seccomp: libseccomp exported a malformed program");
  std::vector<sock_filter> code(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (::pread(fd, code.data(), static_cast<std::size_t>(size), 0) != size) throw_errno("seccomp: read the program", "");
  return code;
}

// The highest call number the policy names on `arch` (allowed or denied); -1 if none.
int highest_named(std::uint32_t arch) {
  int high = -1;
  auto scan = [&](const char* name) {
    int nr = seccomp_syscall_resolve_name_arch(arch, name);
    if (nr >= 0) high = std::max(high, nr);
  };
  for (const char* n : kAllowed) scan(n);
  for (const char* n : kDeniedKnown) scan(n);
  for (const char* n : {"clone", "clone3", "socket", "personality"}) scan(n);
  return high;
}

constexpr sock_filter stmt(std::uint16_t code, std::uint32_t k) { return {code, 0, 0, k}; }
constexpr sock_filter jump(std::uint16_t code, std::uint32_t k, std::size_t jt, std::size_t jf) {
  return {code, static_cast<std::uint8_t>(jt), static_cast<std::uint8_t>(jf), k};
}

// Instructions put before libseccomp's program: per architecture, a call number above the
// highest the policy names gets ENOSYS (libseccomp alone would give the default, EPERM, and a
// libc probing a newer call would not fall back). The rest runs libseccomp's program, which
// loads what it needs itself. x32 numbers (bit 30 set on x86_64) are left to libseccomp.
std::vector<sock_filter> enosys_prelude() {
  struct Arch {
    std::uint32_t audit;
    std::uint32_t high;
    bool x32_bit;
  };
  std::vector<Arch> list;
  for (std::uint32_t a : arches()) {
    if (a == SCMP_ARCH_X32) continue;  // shares AUDIT_ARCH_X86_64; told apart by the bit
    int high = highest_named(a);
    if (high >= 0) list.push_back({a, static_cast<std::uint32_t>(high), a == SCMP_ARCH_X86_64});
  }
  // Layout: load arch; per arch [jeq arch; load nr; (jset x32 bit); jgt high]; ja start;
  // ret ENOSYS; start.
  std::size_t blocks = 0;
  for (const Arch& a : list) blocks += a.x32_bit ? 4 : 3;
  const std::size_t enosys = 1 + blocks + 1, start = enosys + 1;
  std::vector<sock_filter> out;
  out.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  for (const Arch& a : list) {
    std::size_t len = a.x32_bit ? 4 : 3;
    out.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, a.audit, 0, len - 1));
    out.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    if (a.x32_bit) {
      std::size_t at = out.size();
      out.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, 0x40000000u, start - at - 1, 0));
    }
    std::size_t at = out.size();
    out.push_back(jump(BPF_JMP | BPF_JGT | BPF_K, a.high, enosys - at - 1, start - at - 1));
  }
  out.push_back(stmt(BPF_JMP | BPF_JA, static_cast<std::uint32_t>(start - out.size() - 1)));
  out.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));
  return out;
}

std::vector<sock_filter> build() {
  Ctx ctx(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (!ctx) throw Error(ErrorKind::Internal, "seccomp: seccomp_init failed");
  void* c = ctx.get();
  // The filter is only exported; no_new_privs stays as the caller leaves it (docker does not
  // set it: setuid programs keep working).
  check(seccomp_attr_set(c, SCMP_FLTATR_CTL_NNP, 0), "attribute NNP");
  check(seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "attribute BADARCH");
  // A binary tree of call numbers: a few comparisons per call instead of a walk through the list.
  check(seccomp_attr_set(c, SCMP_FLTATR_CTL_OPTIMIZE, 2), "attribute OPTIMIZE");
  for (std::uint32_t a : arches())
    if (a != seccomp_arch_native()) check(seccomp_arch_add(c, a), "add architecture");

  for (const char* n : kAllowed) add(c, SCMP_ACT_ALLOW, n);
  for (const char* n : kDeniedKnown) add(c, SCMP_ACT_ERRNO(EPERM), n);

  // clone without any namespace flag (s390 passes the flags second).
  std::uint32_t native = seccomp_arch_native();
  unsigned flags_arg = (native == SCMP_ARCH_S390X || native == SCMP_ARCH_S390) ? 1 : 0;
  scmp_arg_cmp no_ns = SCMP_CMP(flags_arg, SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0);
  add(c, SCMP_ACT_ALLOW, "clone", 1, &no_ns);
  // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc use clone.
  add(c, SCMP_ACT_ERRNO(ENOSYS), "clone3");
  scmp_arg_cmp not_vsock = SCMP_A0(SCMP_CMP_NE, AF_VSOCK);
  add(c, SCMP_ACT_ALLOW, "socket", 1, &not_vsock);
  for (scmp_datum_t v : kPersonalities) {
    scmp_arg_cmp eq = SCMP_A0(SCMP_CMP_EQ, v);
    add(c, SCMP_ACT_ALLOW, "personality", 1, &eq);
  }

  std::vector<sock_filter> code = enosys_prelude();
  std::vector<sock_filter> body = export_bpf(c);
  code.insert(code.end(), body.begin(), body.end());
  if (code.size() > BPF_MAXINSNS)
    throw Error(ErrorKind::Internal, "seccomp: the program has " + std::to_string(code.size()) +
                                         " instructions, more than the kernel's limit");
  return code;
}

}  // namespace

SeccompFilter::SeccompFilter(std::vector<sock_filter> code) : code_(std::move(code)) {
  prog_.len = static_cast<unsigned short>(code_.size());
  prog_.filter = code_.data();
}

const SeccompFilter& default_seccomp_filter() {
  static const SeccompFilter filter(build());
  return filter;
}

}  // namespace cbuild::overlay
