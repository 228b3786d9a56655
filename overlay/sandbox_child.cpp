// The sandbox child: one function per step, run in order in the new namespaces.
//
// Runs after clone in a copy of a possibly multi-threaded process, so it only makes system
// calls on data the parent prepared (internal/child_plan.h): no allocation, no exceptions, no
// locks. A failing step sends (step, errno, index) to the parent and exits.
//
// "No locks" includes the ones glibc takes on our behalf. fork() runs the atfork handlers,
// which lock malloc's arenas and the stdio list: if another thread of cbuild (a parallel
// stage, a RUN output reader, a compression worker) held one at clone time, that lock is
// copied held and fork() waits forever. And setgroups()/setresuid()/setresgid() broadcast to
// every thread glibc believes exists (the copied thread list) — taking its stack-list lock
// and signalling thread IDs that mean nothing here. So the command is started with the raw
// clone system call and credentials are set with raw system calls: this process has exactly
// one thread, which is all the kernel calls change.

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/close_range.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "overlay/internal/child_plan.h"
#include "overlay/internal/child_report.h"

namespace cbuild::overlay::internal {
namespace {

int g_sock = -1;

[[noreturn]] void fail(Step step, int index = -1, int err = errno) noexcept {
  ChildReport r{step, err, index};
  ssize_t w;
  do w = ::send(g_sock, &r, sizeof r, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  ::_exit(127);
}

void check(bool ok, Step step, int index = -1) noexcept {
  if (!ok) fail(step, index);
}

// PID 1 inherited every fd of cbuild (clone copies the table): keep only the ones the run
// needs, so neither PID 1 nor the command holds a host directory, a store lock or a socket.
// The bind-source fds survive until bind_mounts() has used them.
void close_other_fds(const ChildPlan& p, int sock, int status_fd) noexcept {
  int keep[5] = {sock, status_fd, p.stdin_fd, p.stdout_fd, p.stderr_fd};
  for (int i = 1; i < 5; ++i)
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) std::swap(keep[j - 1], keep[j]);
  // Merge the two sorted lists without allocating; close every gap between kept fds.
  unsigned next = 0;
  std::size_t a = 0, b = 0;
  while (a < 5 || b < p.bind_fds.size()) {
    int k = (b >= p.bind_fds.size() || (a < 5 && keep[a] < p.bind_fds[b])) ? keep[a++] : p.bind_fds[b++];
    if (k < 0 || static_cast<unsigned>(k) < next) continue;
    if (static_cast<unsigned>(k) > next) ::syscall(SYS_close_range, next, static_cast<unsigned>(k) - 1, 0u);
    next = static_cast<unsigned>(k) + 1;
  }
  ::syscall(SYS_close_range, next, ~0u, 0u);
}

// PID 1 gets SIGKILL when the thread that cloned it exits (Sandbox::run's caller, blocked in
// run() until PID 1 is reaped) — and so does the whole namespace with it. The kernel sends it
// on each re-parenting after this call; a parent that died before it never sends "go" (it
// waits for "armed" first), so wait_parent() sees EOF. getppid() cannot close that race here:
// in a new PID namespace it is 0 whoever the parent is.
void arm_parent_death() noexcept {
  check(::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0, Step::ParentDeath);
  char armed = 1;
  ssize_t w;
  do w = ::send(g_sock, &armed, 1, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w != 1) ::_exit(127);  // the parent is gone
}

// PID 1 is a clone of cbuild, so /proc/1/cmdline and /proc/1/environ would show cbuild's
// argv (build-arg values) and environment (tokens); cmdline is readable by anyone. Overwrite
// this copy's argument and environment strings in place: the argument area then reads
// "cbuild-init" (NUL-padded to its old length; its last byte stays NUL so the kernel does not
// read on into the environment), the environment area only NULs. PR_SET_MM could instead
// point /proc/1 at other memory, but needs CAP_SYS_RESOURCE, which a confined cbuild (in a
// container itself) may lack; the overwrite needs nothing.
constexpr char kInitName[] = "cbuild-init";

void hide_cbuild_args(const ChildPlan& p) noexcept {
  if (p.arg_end > p.arg_start) {
    auto* a = reinterpret_cast<char*>(p.arg_start);
    std::size_t n = p.arg_end - p.arg_start;
    std::memset(a, 0, n);
    std::memcpy(a, kInitName, std::min(n - 1, sizeof kInitName - 1));
  }
  if (p.env_end > p.env_start) std::memset(reinterpret_cast<char*>(p.env_start), 0, p.env_end - p.env_start);
  ::prctl(PR_SET_NAME, kInitName, 0, 0, 0);  // /proc/1/comm: not cbuild's thread name
}

void wait_parent() noexcept {
  char go = 0;
  ssize_t n;
  do n = ::recv(g_sock, &go, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(127);  // the parent gave up; nothing to report to
}

constexpr unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;

// Adds `attrs` to the mount at `path` (and, when `recursive`, every mount below it), keeping
// its other flags (a bind remount would reset them all).
bool add_mount_attrs(const char* path, std::uint64_t attrs, bool recursive = true) noexcept {
  struct mount_attr a;
  std::memset(&a, 0, sizeof a);
  a.attr_set = attrs;
  return ::syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &a, sizeof a) == 0;
}

void mount_filesystems(const ChildPlan& p) noexcept {
  // Nothing we mount may propagate back to the host.
  check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, Step::MakePrivate);
  // pivot_root needs the new root to be a mount point.
  check(::mount(p.rootfs.c_str(), p.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0, Step::BindRoot);
  // A root RUN keeps CAP_MKNOD (docker grants it, and images record device nodes), but with no
  // device cgroup a node it makes for the host's disk would open that disk. nodev lets it make
  // nodes and forbids opening them; the few devices a build needs are bound in by mount_dev().
  check(add_mount_attrs(p.rootfs.c_str(), MOUNT_ATTR_NODEV), Step::BindRoot);
  check(::mount("proc", p.proc.c_str(), "proc", kNoSuidDevExec, nullptr) == 0, Step::MountProc);
  if (::mount("sysfs", p.sys.c_str(), "sysfs", kNoSuidDevExec | MS_RDONLY, nullptr) != 0) {
    // sysfs may refuse a new instance (e.g. a net namespace we do not own): bind it read-only.
    check(::mount("/sys", p.sys.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0, Step::MountSys);
    check(::mount(nullptr, p.sys.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kNoSuidDevExec, nullptr) == 0,
          Step::MountSys);
  }
}

void mount_dev(const ChildPlan& p) noexcept {
  check(::mount("tmpfs", p.dev.c_str(), "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") == 0,
        Step::MountDev);
  int dev = ::open(p.dev.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  check(dev >= 0, Step::MountDev);
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  static constexpr Node nodes[] = {{"null", 1, 3},    {"zero", 1, 5}, {"full", 1, 7},
                                   {"random", 1, 8},  {"urandom", 1, 9}, {"tty", 5, 0}};
  int i = 0;
  if (p.userns) {
    // No mknod in a user namespace: bind cbuild's own nodes (the old root is still "/").
    for (const Node& n : nodes) {
      char node[64], host[32];
      std::snprintf(node, sizeof node, "/proc/self/fd/%d/%s", dev, n.name);
      std::snprintf(host, sizeof host, "/dev/%s", n.name);
      check(::mknodat(dev, n.name, S_IFREG | 0666, 0) == 0, Step::MakeDevNodes, i);
      check(::mount(host, node, nullptr, MS_BIND, nullptr) == 0, Step::MakeDevNodes, i++);
    }
  } else {
    for (const Node& n : nodes) {
      check(::mknodat(dev, n.name, S_IFCHR | 0666, makedev(n.major, n.minor)) == 0, Step::MakeDevNodes, i);
      // mknod honours the umask; the nodes must be world-usable.
      check(::fchmodat(dev, n.name, 0666, 0) == 0, Step::MakeDevNodes, i);
      ++i;
    }
    // Each node becomes a mount of its own (a bind onto itself) that keeps device access; then
    // the /dev tmpfs turns nodev, so a node the command makes there cannot be opened.
    i = 0;
    for (const Node& n : nodes) {
      char node[64];
      std::snprintf(node, sizeof node, "/proc/self/fd/%d/%s", dev, n.name);
      check(::mount(node, node, nullptr, MS_BIND, nullptr) == 0, Step::MakeDevNodes, i++);
    }
  }
  check(add_mount_attrs(p.dev.c_str(), MOUNT_ATTR_NODEV, false), Step::MountDev);
  check(::mkdirat(dev, "pts", 0755) == 0, Step::MountDevpts);
  check(::mkdirat(dev, "shm", 01777) == 0, Step::MountShm);
  check(::fchmodat(dev, "shm", 01777, 0) == 0, Step::MountShm);
  // Mount through the fd path: the strings are fixed, the directory is our fresh tmpfs.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d/pts", dev);
  const char* devpts = p.devpts_gid_tty ? "newinstance,ptmxmode=0666,mode=0620,gid=5"
                                        : "newinstance,ptmxmode=0666,mode=0620";
  check(::mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC, devpts) == 0, Step::MountDevpts);
  std::snprintf(path, sizeof path, "/proc/self/fd/%d/shm", dev);
  check(::mount("shm", path, "tmpfs", kNoSuidDevExec, "mode=1777,size=65536k") == 0, Step::MountShm);
  struct Link {
    const char* target;
    const char* name;
  };
  static constexpr Link links[] = {{"pts/ptmx", "ptmx"},        {"/proc/self/fd", "fd"},
                                   {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
                                   {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"}};
  i = 0;
  for (const Link& l : links) check(::symlinkat(l.target, dev, l.name) == 0, Step::MakeDevNodes, 100 + i++);
  ::close(dev);
}

// runc's defaults for a container's kernel files: read-only paths first (a bind of each onto
// itself, remounted read-only with proc's own flags), then masks. Paths this kernel lacks are
// skipped. Run before the user's binds, so none of them can be undone from a mount below.
void protect_kernel_files(const ChildPlan& p) noexcept {
  int i = 0;
  for (const std::string& path : p.readonly_paths) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      check(errno == ENOENT, Step::ReadonlyPaths, i++);
      continue;
    }
    check(::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0, Step::ReadonlyPaths, i);
    check(::mount(nullptr, path.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kNoSuidDevExec, nullptr) == 0,
          Step::ReadonlyPaths, i);
    ++i;
  }
  i = 0;
  for (const std::string& path : p.masked_paths) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      check(errno == ENOENT, Step::MaskPaths, i++);
      continue;
    }
    if (S_ISDIR(st.st_mode))
      check(::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY | kNoSuidDevExec, "size=4k") == 0, Step::MaskPaths, i);
    else
      check(::mount(p.dev_null.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) == 0, Step::MaskPaths, i);
    ++i;
  }
}

// Creates a mount point below the /dev tmpfs (see ChildBind::dev_components). Nothing the
// command made is there yet, but /dev holds symlinks of ours (/dev/fd → /proc/self/fd): no
// component may be one, or the mount would land wherever it points.
bool make_dev_mount_point(const ChildPlan& p, const ChildBind& b) noexcept {
  int fd = ::open(p.dev.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  for (std::size_t k = 0; fd >= 0 && k < b.dev_components.size(); ++k) {
    const char* name = b.dev_components[k].c_str();
    bool leaf = k + 1 == b.dev_components.size();
    if (!leaf || b.dir) {
      if (::mkdirat(fd, name, 0755) != 0 && errno != EEXIST) {
        ::close(fd);
        return false;
      }
      int next = ::openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      ::close(fd);
      fd = next;
      if (leaf) break;
      continue;
    }
    if (::mknodat(fd, name, S_IFREG | 0644, 0) != 0 && errno != EEXIST) {
      ::close(fd);
      return false;
    }
    struct stat st {};
    bool ok = ::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode);
    ::close(fd);
    if (!ok) errno = ELOOP;
    return ok;
  }
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

void bind_mounts(const ChildPlan& p) noexcept {
  int i = 0;
  for (const ChildBind& b : p.binds) {
    if (!b.dev_components.empty()) check(make_dev_mount_point(p, b), Step::BindMounts, i);
    if (b.tree_fd >= 0)
      check(::syscall(SYS_move_mount, b.tree_fd, "", AT_FDCWD, b.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) == 0,
            Step::BindMounts, i);
    else if (b.source.empty())
      check(::mount("tmpfs", b.target.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, b.tmpfs_options.c_str()) == 0,
            Step::BindMounts, i);
    else
      check(::mount(b.source.c_str(), b.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0, Step::BindMounts, i);
    // nodev as for the rootfs: a cache mount outlives the run, and a node made there must not
    // open a host device in a later one.
    check(add_mount_attrs(b.target.c_str(), MOUNT_ATTR_NODEV | (b.readonly ? MOUNT_ATTR_RDONLY : 0)),
          Step::BindMounts, i);
    ++i;
  }
  for (int fd : p.bind_fds) ::close(fd);
}

void mount_secrets(const ChildPlan& p) noexcept {
  if (p.secrets.empty()) return;
  // The staging tmpfs lives only in this mount namespace (mounts are private by now) and is
  // detached with the old root by pivot(); only the bound files stay reachable.
  check(::mount("tmpfs", p.secret_dir.c_str(), "tmpfs", kNoSuidDevExec, p.secret_tmpfs_options.c_str()) == 0,
        Step::MountSecrets, -1);
  int i = 0;
  for (const ChildSecret& s : p.secrets) {
    int fd = ::open(s.staged.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    check(fd >= 0, Step::MountSecrets, i);
    std::size_t done = 0;
    while (done < s.content.size()) {
      ssize_t n = ::write(fd, s.content.data() + done, s.content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      check(n > 0, Step::MountSecrets, i);
      done += static_cast<std::size_t>(n);
    }
    // chmod after chown: chown clears set-id bits.
    check(::fchown(fd, s.uid, s.gid) == 0, Step::MountSecrets, i);
    check(::fchmod(fd, s.mode) == 0, Step::MountSecrets, i);
    ::close(fd);
    check(::mount(s.staged.c_str(), s.target.c_str(), nullptr, MS_BIND, nullptr) == 0, Step::MountSecrets, i);
    // A bind remount sets the per-mount flags to exactly these, so repeat the tmpfs's.
    check(::mount(nullptr, s.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kNoSuidDevExec, nullptr) == 0,
          Step::MountSecrets, i);
    ++i;
  }
}

void set_hostname(const ChildPlan& p) noexcept {
  check(::sethostname(p.hostname.data(), p.hostname.size()) == 0, Step::Hostname);
}

void loopback_up(const ChildPlan& p) noexcept {
  if (!p.net_none) return;
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  check(s >= 0, Step::LoopbackUp);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, "lo", 3);
  check(::ioctl(s, SIOCGIFFLAGS, &ifr) == 0, Step::LoopbackUp);
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  check(::ioctl(s, SIOCSIFFLAGS, &ifr) == 0, Step::LoopbackUp);
  ::close(s);
}

void pivot(const ChildPlan& p) noexcept {
  // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the
  // new root (runc's trick: no put_old directory inside the image is needed).
  check(::chdir(p.rootfs.c_str()) == 0, Step::PivotRoot);
  check(::syscall(SYS_pivot_root, ".", ".") == 0, Step::PivotRoot);
  check(::umount2(".", MNT_DETACH) == 0, Step::PivotRoot);
  check(::chdir("/") == 0, Step::PivotRoot);
}

void setup_stdio(const ChildPlan& p) noexcept {
  int in = p.stdin_fd;
  if (in < 0) {
    in = ::open("/dev/null", O_RDONLY);
    check(in >= 0, Step::Stdio, 0);
  }
  // dup2 onto 0..2 in an order that cannot clobber a source still needed: first move every
  // source above 2, then place them.
  int src[3] = {in, p.stdout_fd, p.stderr_fd};
  for (int k = 0; k < 3; ++k) {
    int d = ::fcntl(src[k], F_DUPFD_CLOEXEC, 3);
    check(d >= 0, Step::Stdio, k);
    src[k] = d;
  }
  for (int k = 0; k < 3; ++k) check(::dup2(src[k], k) == k, Step::Stdio, k);
  // No fd of cbuild's may leak into the command (other threads may have opened some).
  ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
}

void drop_privileges(const ChildPlan& p) noexcept {
  // The bounding set first (needs CAP_SETPCAP, which we still have).
  for (int c = 0; c <= p.cap_last; ++c)
    if (!(p.keep_caps >> c & 1) && ::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL)
      fail(Step::Capabilities, c);
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  // The filter while root still holds CAP_SYS_ADMIN, which lets it load without
  // no_new_privs (runc's order). What follows until exec (setgroups, set*id, capset, chdir,
  // getcwd, execve) is allowed by it.
  check(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, p.seccomp, 0, 0) == 0, Step::Seccomp);
  if (!p.setgroups_denied) check(::syscall(SYS_setgroups, p.groups.size(), p.groups.data()) == 0, Step::Groups);
  check(::syscall(SYS_setresgid, p.gid, p.gid, p.gid) == 0, Step::SetGid);
  // A non-zero uid loses every capability here (no SECBIT_KEEP_CAPS).
  check(::syscall(SYS_setresuid, p.uid, p.uid, p.uid) == 0, Step::SetUid);
  // Root keeps docker's set as permitted and effective; anybody else keeps nothing. No
  // inheritable capabilities for anyone (docker gives none since CVE-2022-24769), whatever
  // cbuild itself was started with.
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2];
  std::memset(data, 0, sizeof data);
  if (p.uid == 0)
    for (int k = 0; k < 2; ++k) data[k].effective = data[k].permitted = static_cast<std::uint32_t>(p.keep_caps >> (32 * k));
  check(::syscall(SYS_capset, &hdr, data) == 0, Step::Capabilities);
}

[[noreturn]] void exec_command(const ChildPlan& p) noexcept {
  check(::chdir(p.cwd.c_str()) == 0, Step::Chdir);
  // CVE-2024-21626: a cwd like /proc/self/fd/N can land on a still-open host directory. The
  // kernel reports such a cwd as "(unreachable)/…"; anything not starting with '/' is refused.
  char cwd[4096];
  if (::syscall(SYS_getcwd, cwd, sizeof cwd) < 0 || cwd[0] != '/') fail(Step::Chdir, -1, EPERM);
  int err = ENOENT;
  for (const std::string& path : p.exec_candidates) {
    ::execve(path.c_str(), p.argv.data(), p.envp.data());
    if (errno != ENOENT) {
      err = errno;
      if (errno != EACCES) break;  // like execvp: EACCES goes on searching, remembers the error
    }
  }
  fail(Step::Exec, -1, err);
}

}  // namespace

void child_main(const ChildPlan& p, int sock, int status_fd) noexcept {
  g_sock = sock;
  // PID 1 is a copy of cbuild (not exec'd): its memory, fds and /proc/1/exe (the host binary,
  // CVE-2019-5736) must not be reachable from the command. Not dumpable → /proc/1 is off
  // limits without CAP_SYS_PTRACE, which the command never has.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  arm_parent_death();
  hide_cbuild_args(p);
  close_other_fds(p, sock, status_fd);
  wait_parent();
  mount_filesystems(p);
  mount_dev(p);
  protect_kernel_files(p);
  bind_mounts(p);
  mount_secrets(p);
  set_hostname(p);
  loopback_up(p);
  pivot(p);

  sigset_t set, old;
  pid1_signal_set(&set);
  ::sigprocmask(SIG_BLOCK, &set, &old);
  // fork() without glibc's atfork locking (see the top of the file); with no new stack the
  // child runs on a copy of this one, as after fork.
  auto pid = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  check(pid >= 0, Step::Fork);
  if (pid == 0) {
    ::close(status_fd);
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    ::setsid();  // its own session: a terminal signal from the host never hits our PID 1 path
    setup_stdio(p);
    drop_privileges(p);
    ::umask(022);
    exec_command(p);
  }
  // EOF on the socket now means "exec happened" (the command's copy is close-on-exec).
  ::close(sock);
  pid1_main(pid, status_fd);
}

}  // namespace cbuild::overlay::internal
