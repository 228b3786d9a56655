// The sandbox parent: prepares the child's plan, clones into new namespaces, joins the cgroup,
// runs the handshake, enforces timeout and cancellation, and turns the outcome into an
// ExitStatus or an Error.

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/cgroup.h"
#include "overlay/internal/child_plan.h"
#include "overlay/internal/child_report.h"
#include "overlay/safe_path.h"
#include "overlay/sandbox.h"
#include "overlay/seccomp_filter.h"
#include "overlay/sys/child_process.h"
#include "overlay/sys/syscalls.h"
#include "overlay/user_db.h"
#include "overlay/user_namespace.h"

namespace cbuild::overlay {
namespace {

using internal::ChildBind;
using internal::ChildPlan;
using internal::ChildReport;
using internal::Step;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kInitFiles[] = {"etc/hosts", "etc/resolv.conf", "etc/hostname"};

// What runc makes read-only and masks in a container's /proc and /sys by default (moby
// oci/defaults.go): /proc/sys holds host-wide settings (kernel.core_pattern runs a program as
// host root), sysrq-trigger reboots the host, the rest leak host state.
constexpr const char* kReadonlyProc[] = {"asound", "bus", "fs", "irq", "sys", "sysrq-trigger"};
constexpr const char* kMaskedProc[] = {"asound", "acpi", "kcore", "keys", "latency_stats", "timer_list",
                                       "timer_stats", "sched_debug", "scsi"};
constexpr const char* kMaskedSys[] = {"firmware", "devices/virtual/powercap"};

// Docker's default capability set (moby oci/caps/defaults.go).
constexpr int kDefaultCaps[] = {0 /*CHOWN*/,       1 /*DAC_OVERRIDE*/, 3 /*FOWNER*/,  4 /*FSETID*/,
                                5 /*KILL*/,        6 /*SETGID*/,       7 /*SETUID*/,  8 /*SETPCAP*/,
                                10 /*NET_BIND_SERVICE*/, 13 /*NET_RAW*/, 18 /*SYS_CHROOT*/, 27 /*MKNOD*/,
                                29 /*AUDIT_WRITE*/, 31 /*SETFCAP*/};

std::string env_value(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& kv : env)
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=')
      return kv.substr(key.size() + 1);
  return {};
}
bool env_has(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& kv : env)
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=') return true;
  return false;
}

int cap_last_cap() {
  auto text = read_file_if_exists("/proc/sys/kernel/cap_last_cap", 64);
  if (!text) return 40;
  try {
    return std::stoi(*text);
  } catch (...) {
    return 40;
  }
}

// /proc, /sys and /dev must be real directories in the image: a symlink there would move
// the kernel filesystems elsewhere in the tree (runc GHSA-g2j6-57v7-gm8c refuses it too).
void refuse_symlink(int root_fd, const std::string& path) {
  ParentAndLeaf pl = open_parent_in_root(root_fd, path, false);
  auto st = sys::try_lstatat(pl.dir.get(), pl.leaf, path);
  if (st && S_ISLNK(st->st_mode))
    throw Error(ErrorKind::FailedPrecondition,
                "sandbox: " + quote("/" + path) + " is a symlink in the image; refusing to mount over it");
}

// Resolves `path` inside the rootfs to a canonical host path, creating a stub (an empty
// directory or file) when it is missing. Refuses a stub of the wrong kind.
// Opens (creating when missing) the file `path` inside the root. A dangling symlink on the
// leaf is followed inside the root, its target's directories created, as docker does for an
// /etc/resolv.conf that links to a runtime directory.
UniqueFd create_file_in_root(int root_fd, const std::string& path, int depth) {
  if (depth > 40) throw_errno("sandbox: create mount point", path, ELOOP);
  ParentAndLeaf pl = open_parent_in_root(root_fd, path, true);
  auto st = sys::try_lstatat(pl.dir.get(), pl.leaf, pl.path);
  if (st && S_ISLNK(st->st_mode)) {
    std::string target = sys::readlinkat(pl.dir.get(), pl.leaf, pl.path);
    std::size_t slash = pl.path.rfind('/');
    std::string base = slash == std::string::npos ? "" : pl.path.substr(0, slash + 1);
    return create_file_in_root(root_fd, !target.empty() && target[0] == '/' ? target : base + target, depth + 1);
  }
  if (!st) {
    UniqueFd created = sys::openat(pl.dir.get(), pl.leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644, pl.path);
  }
  return open_in_root(root_fd, pl.path, O_PATH);
}

std::string stub_target(int root_fd, const std::string& root_canon, const std::string& path, bool dir) {
  UniqueFd fd;
  try {
    fd = open_in_root(root_fd, path, O_PATH);
  } catch (const Error& e) {
    if (e.sys_errno() != ENOENT) throw;
    fd = dir ? mkdir_in_root(root_fd, path, 0755) : create_file_in_root(root_fd, path, 0);
  }
  struct stat st = sys::fstatat(fd.get(), "", AT_EMPTY_PATH, path);
  if (dir != S_ISDIR(st.st_mode))
    throw Error(ErrorKind::FailedPrecondition, "sandbox: cannot mount a " + std::string(dir ? "directory" : "file") +
                                                   " over " + quote("/" + path) + " of the image");
  std::string canon = sys::readlinkat(AT_FDCWD, "/proc/self/fd/" + std::to_string(fd.get()), path);
  if (canon == root_canon)
    throw Error(ErrorKind::FailedPrecondition,
                "sandbox: " + quote("/" + path) + " resolves to the root directory itself; refusing to mount over it");
  if (canon.compare(0, root_canon.size() + 1, root_canon + "/") != 0)
    throw Error(ErrorKind::Internal, "sandbox: " + quote(path) + " resolved outside the root to " + quote(canon));
  return canon;
}

// The mount point of a bind or tmpfs at `path` (cleaned, relative to the rootfs). Under /dev it
// is left to the child, on the /dev tmpfs: a stub in the image would be hidden by that tmpfs.
ChildBind mount_point(int root_fd, const ChildPlan& p, const std::string& path, bool dir) {
  ChildBind b;
  b.dir = dir;
  if (path.rfind("dev/", 0) != 0) {
    b.target = stub_target(root_fd, p.rootfs, path, dir);
    return b;
  }
  b.target = p.dev + path.substr(3);
  std::size_t start = 4;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    b.dev_components.push_back(path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return b;
}

// Fields 48-51 of /proc/self/stat: where the kernel shows this process's argv and environ from.
void arg_env_ranges(ChildPlan& p) {
  auto text = read_file_if_exists("/proc/self/stat", 4096);
  std::uintptr_t v[4] = {};
  int found = 0;
  std::size_t at = text ? text->rfind(')') : std::string::npos;
  if (at != std::string::npos) {
    // After "pid (comm)" come fields 3, 4, …
    std::size_t i = at + 1;
    for (int field = 3; field <= 51 && i < text->size(); ++field) {
      while (i < text->size() && (*text)[i] == ' ') ++i;
      std::size_t j = std::min(text->find_first_of(" \n", i), text->size());
      if (field >= 48 && std::from_chars(text->data() + i, text->data() + j, v[field - 48]).ptr == text->data() + j &&
          j > i)
        ++found;
      i = j;
    }
  }
  if (found != 4) throw Error(ErrorKind::Internal, "sandbox: cannot read the argument range from /proc/self/stat");
  p.arg_start = v[0];
  p.arg_end = v[1];
  p.env_start = v[2];
  p.env_end = v[3];
}

// The tmpfs data for a RUN --mount=type=tmpfs: docker's mode, and size= when given.
std::string tmpfs_options(const TmpfsMount& t) {
  std::string o = "mode=1777";
  if (t.size_bytes) o += ",size=" + std::to_string(*t.size_bytes);
  return o;
}

// `secret_dir` is an empty host directory the child mounts its private tmpfs on ("" when
// the spec has no secrets).
ChildPlan make_plan(const RunSpec& spec, const std::string& secret_dir) {
  if (spec.argv.empty() || spec.argv[0].empty()) throw Error(ErrorKind::InvalidArgument, "sandbox: empty command");
  ChildPlan p;
  std::error_code ec;
  p.rootfs = std::filesystem::canonical(spec.rootfs, ec).string();
  if (ec) throw Error(ErrorKind::NotFound, "sandbox: root filesystem " + quote(spec.rootfs.string()) + ": " + ec.message());
  UniqueFd root = sys::openat(AT_FDCWD, p.rootfs, O_PATH | O_DIRECTORY, 0, p.rootfs);

  for (const char* k : {"proc", "sys", "dev"}) refuse_symlink(root.get(), k);
  p.proc = stub_target(root.get(), p.rootfs, "proc", true);
  p.sys = stub_target(root.get(), p.rootfs, "sys", true);
  p.dev = stub_target(root.get(), p.rootfs, "dev", true);
  if (!spec.init_files.empty()) {
    for (const char* f : kInitFiles) {
      auto src = spec.init_files / f;
      if (!std::filesystem::exists(src)) continue;
      p.binds.push_back({src.string(), -1, stub_target(root.get(), p.rootfs, f, false), false, {}});
    }
  }
  for (const auto& b : spec.binds) {
    struct stat st {};
    std::string source = b.source.string();
    int tree = -1;
    if (b.source_fd >= 0) {
      if (::fstat(b.source_fd, &st) != 0) throw_errno("sandbox: bind mount source", source);
      p.tree_owners.push_back(sys::open_tree_clone(b.source_fd, "sandbox: bind mount source " + quote(source)));
      tree = p.tree_owners.back().get();
      p.bind_fds.push_back(tree);
    } else if (::stat(b.source.c_str(), &st) != 0) {
      throw_errno("sandbox: bind mount source", source);
    }
    std::string t = clean_path(b.target);
    if (t.empty()) throw Error(ErrorKind::InvalidArgument, "sandbox: cannot bind mount over the root directory");
    p.binds.push_back(mount_point(root.get(), p, t, S_ISDIR(st.st_mode)));
    p.binds.back().source = source;
    p.binds.back().tree_fd = tree;
    p.binds.back().readonly = b.readonly;
  }
  std::sort(p.bind_fds.begin(), p.bind_fds.end());
  for (const auto& tm : spec.tmpfs) {
    std::string t = clean_path(tm.target);
    if (t.empty()) throw Error(ErrorKind::InvalidArgument, "sandbox: cannot mount a tmpfs over the root directory");
    p.binds.push_back(mount_point(root.get(), p, t, true));
    p.binds.back().tmpfs_options = tmpfs_options(tm);
  }
  std::size_t secret_bytes = 0;
  for (const auto& sf : spec.secrets) {
    std::string t = clean_path(sf.target);
    if (t.empty()) throw Error(ErrorKind::InvalidArgument, "sandbox: cannot mount a secret over the root directory");
    if (sf.content.size() > kMaxSecretBytes)
      throw Error(ErrorKind::InvalidArgument, "sandbox: the secret for " + quote("/" + t) + " is larger than " +
                                                  std::to_string(kMaxSecretBytes / 1024) + " KiB");
    secret_bytes += sf.content.size();
    internal::ChildSecret cs;
    cs.staged = secret_dir + "/" + std::to_string(p.secrets.size());
    cs.target = stub_target(root.get(), p.rootfs, t, false);
    cs.content = sf.content;
    cs.mode = static_cast<mode_t>(sf.mode & 07777);
    cs.uid = sf.uid;
    cs.gid = sf.gid;
    p.secrets.push_back(std::move(cs));
  }
  if (!p.secrets.empty()) {
    p.secret_dir = secret_dir;
    // Room for every file plus a page each (tmpfs rounds up), never the default half of RAM.
    p.secret_tmpfs_options = "mode=0700,size=" + std::to_string(secret_bytes + 4096 * (p.secrets.size() + 1));
  }

  ExecUser user = resolve_user_in_rootfs(spec.user, p.rootfs);
  p.uid = user.uid;
  p.gid = user.gid;
  p.groups = user.groups;
  p.userns = !in_initial_user_namespace();
  if (p.userns) {
    std::ifstream sg("/proc/self/setgroups");
    std::string v;
    p.setgroups_denied = sg >> v && v == "deny";
    p.devpts_gid_tty = gid_is_mapped(5);
  }

  p.cwd = "/" + clean_path(spec.cwd);
  if (p.cwd != "/") mkdir_in_root(root.get(), p.cwd, 0755);  // docker creates a missing WORKDIR

  for (const char* f : kReadonlyProc) p.readonly_paths.push_back(p.proc + "/" + f);
  for (const char* f : kMaskedProc) p.masked_paths.push_back(p.proc + "/" + f);
  for (const char* f : kMaskedSys) p.masked_paths.push_back(p.sys + "/" + f);
  p.dev_null = p.dev + "/null";

  p.hostname = spec.hostname.empty() ? "cbuild" : spec.hostname;
  p.net_none = spec.network == NetworkMode::None;

  p.env_storage = spec.env;
  if (!env_has(p.env_storage, "PATH")) p.env_storage.push_back(std::string("PATH=") + kDefaultPath);
  if (!env_has(p.env_storage, "HOME")) p.env_storage.push_back("HOME=" + user.home);
  p.argv_storage = spec.argv;
  for (auto& s : p.argv_storage) p.argv.push_back(s.data());
  p.argv.push_back(nullptr);
  for (auto& s : p.env_storage) p.envp.push_back(s.data());
  p.envp.push_back(nullptr);

  const std::string& prog = spec.argv[0];
  if (prog.find('/') != std::string::npos) {
    p.exec_candidates.push_back(prog);
  } else {
    std::string path = env_value(p.env_storage, "PATH");
    std::size_t i = 0;
    for (;;) {
      std::size_t j = path.find(':', i);
      std::string dir = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
      p.exec_candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + prog);
      if (j == std::string::npos) break;
      i = j + 1;
    }
  }

  p.stdin_fd = spec.stdin_fd;
  p.stdout_fd = spec.stdout_fd;
  p.stderr_fd = spec.stderr_fd;
  p.cap_last = cap_last_cap();
  for (int c : kDefaultCaps) p.keep_caps |= std::uint64_t{1} << c;
  p.seccomp = default_seccomp_filter().program();
  arg_env_ranges(p);
  return p;
}

Error child_error(const ChildReport& r, const RunSpec& spec, const ChildPlan& plan) {
  std::string what = internal::step_name(r.step);
  if (r.step == Step::BindMounts && r.index >= 0 && static_cast<std::size_t>(r.index) < plan.binds.size())
    what += " " + quote(plan.binds[r.index].target.substr(plan.rootfs.size()));
  if (r.step == Step::MountSecrets && r.index >= 0 && static_cast<std::size_t>(r.index) < plan.secrets.size())
    what += " " + quote(plan.secrets[r.index].target.substr(plan.rootfs.size()));
  if (r.step == Step::Chdir) what += " " + quote(plan.cwd);
  if (r.step == Step::ReadonlyPaths && r.index >= 0 && static_cast<std::size_t>(r.index) < plan.readonly_paths.size())
    what += " " + quote(plan.readonly_paths[r.index].substr(plan.rootfs.size()));
  if (r.step == Step::MaskPaths && r.index >= 0 && static_cast<std::size_t>(r.index) < plan.masked_paths.size())
    what += " " + quote(plan.masked_paths[r.index].substr(plan.rootfs.size()));
  if (r.step == Step::Exec) {
    if (r.err == ENOENT) {
      bool searched = spec.argv[0].find('/') == std::string::npos;
      return Error(ErrorKind::NotFound,
                   "sandbox: exec " + quote(spec.argv[0]) +
                       (searched ? ": executable file not found in $PATH" : ": no such file or directory"),
                   r.err);
    }
    what += " " + quote(spec.argv[0]);
  }
  if ((r.step == Step::SetUid || r.step == Step::SetGid) && r.err == EINVAL && plan.userns)
    return Error(ErrorKind::FailedPrecondition,
                 "sandbox: " + what + " " + std::to_string(r.step == Step::SetUid ? plan.uid : plan.gid) +
                     ": the id is not mapped in this rootless build's user namespace (grant a range in "
                     "/etc/subuid and /etc/subgid, or build as root)",
                 r.err);
  return Error(kind_from_errno(r.err), "sandbox: " + what + ": " + std::strerror(r.err), r.err);
}

struct Deadline {
  std::optional<std::chrono::steady_clock::time_point> at;
  bool passed() const { return at && std::chrono::steady_clock::now() >= *at; }
};

// Polls `fd` (and the child's pidfd) in short slices so cancellation and the deadline are
// noticed. Returns when fd or the pidfd is readable; throws Timeout / Cancelled after
// killing the child.
void wait_readable(int fd, sys::ChildProcess& child, const Deadline& deadline, Cgroup& cg) {
  for (;;) {
    if (cancel_requested() || deadline.passed()) {
      child.signal(SIGKILL);  // PID 1 dies → the kernel kills the whole namespace
      cg.kill_all();
      child.wait();
      if (deadline.passed() && !cancel_requested())
        throw Error(ErrorKind::Timeout, "sandbox: the command did not finish within the timeout; killed");
      throw Error(ErrorKind::Cancelled, "sandbox: cancelled; the command was killed");
    }
    pollfd p[2] = {{fd, POLLIN, 0}, {child.pidfd(), POLLIN, 0}};
    int r = ::poll(p, 2, 100);  // a negative fd is ignored by poll
    if (r < 0 && errno != EINTR) throw_errno("sandbox: poll", "");
    if (r > 0) return;
  }
}

}  // namespace

const char* internal::step_name(Step s) noexcept {
  switch (s) {
    case Step::WaitParent: return "handshake";
    case Step::MakePrivate: return "make mounts private";
    case Step::BindRoot: return "bind mount the root filesystem";
    case Step::MountProc: return "mount /proc";
    case Step::MountSys: return "mount /sys";
    case Step::MountDev: return "mount /dev";
    case Step::MakeDevNodes: return "create /dev nodes";
    case Step::MountDevpts: return "mount /dev/pts";
    case Step::MountShm: return "mount /dev/shm";
    case Step::BindMounts: return "bind mount";
    case Step::MountSecrets: return "mount secret";
    case Step::Hostname: return "set hostname";
    case Step::LoopbackUp: return "bring up lo";
    case Step::PivotRoot: return "pivot_root";
    case Step::Fork: return "fork the command";
    case Step::Stdio: return "set up stdin/stdout/stderr";
    case Step::Groups: return "setgroups";
    case Step::SetGid: return "setgid";
    case Step::SetUid: return "setuid";
    case Step::Capabilities: return "drop capabilities";
    case Step::Umask: return "umask";
    case Step::Chdir: return "chdir to";
    case Step::Exec: return "exec";
    case Step::ParentDeath: return "set the parent-death signal";
    case Step::ReadonlyPaths: return "make read-only";
    case Step::MaskPaths: return "mask";
    case Step::Seccomp: return "install the seccomp filter";
  }
  return "unknown step";
}

std::vector<std::string> Sandbox::stub_paths(const RunSpec& spec) {
  std::vector<std::string> out = {"proc", "sys", "dev"};
  if (!spec.init_files.empty())
    for (const char* f : kInitFiles) out.push_back(f);
  for (const auto& b : spec.binds) {
    std::string t = clean_path(b.target);
    if (t.empty()) continue;
    if (spec.keep_directory_stubs) {
      struct stat st {};
      int r = b.source_fd >= 0 ? ::fstat(b.source_fd, &st) : ::stat(b.source.c_str(), &st);
      if (r == 0 && S_ISDIR(st.st_mode)) continue;
    }
    out.push_back(t);
  }
  if (!spec.keep_directory_stubs)
    for (const auto& tm : spec.tmpfs) {
      std::string t = clean_path(tm.target);
      if (!t.empty()) out.push_back(t);
    }
  for (const auto& sf : spec.secrets) {
    std::string t = clean_path(sf.target);
    if (!t.empty()) out.push_back(t);
  }
  return out;
}

ExitStatus Sandbox::run(const RunSpec& spec) {
  check_cancelled();
  // Stays empty on the host: the child mounts its own tmpfs over it (see mount_secrets).
  std::optional<TempDir> secret_dir;
  if (!spec.secrets.empty()) secret_dir.emplace(std::filesystem::path{}, "cbuild-secrets-");
  ChildPlan plan = make_plan(spec, secret_dir ? std::filesystem::canonical(secret_dir->path()).string() : "");
  Cgroup cg(spec.limits);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("sandbox: socketpair", "");
  UniqueFd sock(sv[0]), child_sock(sv[1]);
  int pp[2];
  if (::pipe2(pp, O_CLOEXEC) != 0) throw_errno("sandbox: pipe", "");
  UniqueFd status_r(pp[0]), status_w(pp[1]);

  std::uint64_t flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD;
  if (plan.net_none) flags |= CLONE_NEWNET;
  int pidfd = -1;
  clone_args args{};
  args.flags = flags;
  args.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) throw_errno("sandbox: clone3 (new namespaces)", "");
  if (pid == 0) internal::child_main(plan, child_sock.get(), status_w.get());

  sys::ChildProcess child(static_cast<pid_t>(pid), UniqueFd(pidfd));
  child_sock.reset();
  status_w.reset();
  Deadline deadline;
  if (spec.timeout) deadline.at = std::chrono::steady_clock::now() + *spec.timeout;

  cg.add(child.pid());
  // The child says "armed" once its parent-death signal is set; only then may it go on. Had
  // this process died before that, no "go" would ever come and the child would exit on EOF —
  // so no sandbox outlives cbuild, whatever the timing.
  for (;;) {
    wait_readable(sock.get(), child, deadline, cg);
    ChildReport r{};
    ssize_t n = ::recv(sock.get(), &r, sizeof r, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (child.wait_for_exit(std::chrono::milliseconds(0))) break;  // phase 1 sees it died
      continue;
    }
    if (n < 0) throw_errno("sandbox: handshake", "");
    if (n == 0) break;  // died: phase 1 sees EOF and reads its status
    if (n == sizeof r) {
      child.signal(SIGKILL);
      child.wait();
      throw child_error(r, spec, plan);
    }
    if (n != 1) throw Error(ErrorKind::Internal, "sandbox: malformed handshake from the child");
    char go = 1;
    // A child that already failed has closed its end: phase 1 reads its report.
    if (::send(sock.get(), &go, 1, MSG_NOSIGNAL) != 1 && errno != EPIPE && errno != ECONNRESET)
      throw_errno("sandbox: handshake", "");
    break;
  }

  // Phase 1: a failure record, or EOF once the command has exec'd.
  for (;;) {
    wait_readable(sock.get(), child, deadline, cg);
    ChildReport r{};
    ssize_t n = ::recv(sock.get(), &r, sizeof r, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (child.wait_for_exit(std::chrono::milliseconds(0))) break;  // died without a word
      continue;
    }
    if (n < 0) throw_errno("sandbox: reading the child's report", "");
    if (n == 0) break;  // exec succeeded
    if (n != sizeof r) throw Error(ErrorKind::Internal, "sandbox: malformed report from the child");
    child.signal(SIGKILL);
    child.wait();
    throw child_error(r, spec, plan);
  }

  // Phase 2: wait for PID 1, which leaves as soon as the command exits.
  for (;;) {
    wait_readable(-1, child, deadline, cg);
    if (child.wait_for_exit(std::chrono::milliseconds(0))) break;
  }
  int pid1_status = child.wait();
  int cmd_status = 0;
  ssize_t n = ::read(status_r.get(), &cmd_status, sizeof cmd_status);
  if (n == sizeof cmd_status) return exit_status_of(cmd_status);
  // PID 1 itself died before the command was reaped (killed from outside).
  return exit_status_of(pid1_status);
}

ExitStatus exit_status_of(int wait_status) noexcept {
  ExitStatus out;
  if (WIFSIGNALED(wait_status)) {
    out.signal = WTERMSIG(wait_status);
    out.code = 128 + out.signal;
  } else {
    out.code = WEXITSTATUS(wait_status);
  }
  return out;
}

}  // namespace cbuild::overlay
