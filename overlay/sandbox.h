// Sandbox — runs one command inside a root filesystem in new namespaces, like a Dockerfile RUN.
//
//   overlay::RunSpec spec;
//   spec.rootfs = merged_dir;                 // an ActiveMount's target, or a plain rootfs dir
//   spec.argv = {"/bin/sh", "-c", "make"};
//   spec.env = {"PATH=/usr/bin:/bin"};
//   spec.stdout_fd = out_pipe; spec.stderr_fd = err_pipe;
//   overlay::ExitStatus st = overlay::Sandbox::run(spec);
//   if (st.code != 0) …  // "RUN returned a non-zero code: N"
//
// What the command sees (matching `docker build`):
//  - new mount, PID, UTS and IPC namespaces; a new network namespace with only `lo` up when
//    network == None, the host's network otherwise;
//  - the rootfs as "/" (pivot_root), /proc, /sys read-only, /dev a tmpfs with null zero full
//    random urandom tty, ptmx → pts/ptmx (a private devpts), shm (tmpfs), fd/stdin/stdout/stderr
//    links; the files of `init_files` (hosts, resolv.conf, hostname — see init_layer.h) and
//    `binds` bind-mounted at their targets, a fresh tmpfs (mode 1777, nosuid, nodev) at each
//    of `tmpfs` (RUN --mount=type=tmpfs), then each of `secrets` as a read-only file from a
//    tmpfs private to the run (RUN --mount=type=secret), in that order; a bind or tmpfs
//    target under /dev gets its mount point on the /dev tmpfs (never in the image), and none
//    of /dev's own symlinks (fd, stdin, …) may be on its way;
//  - hostname `hostname`; uid/gid from `user` looked up in the rootfs' /etc/passwd and
//    /etc/group (parsed by cbuild, never NSS), supplementary groups from /etc/group
//    memberships; umask 022; `cwd` as working directory (created when missing, as docker does
//    for WORKDIR); env exactly `env`, plus PATH (docker's default) and HOME (from passwd) when
//    `env` lacks them; argv[0] without '/' is searched in that PATH inside the rootfs;
//  - runc's default protection of kernel files: /proc/{asound,bus,fs,irq,sys,sysrq-trigger}
//    read-only; /proc/{asound,acpi,kcore,keys,latency_stats,timer_list,timer_stats,
//    sched_debug,scsi} and /sys/{firmware,devices/virtual/powercap} masked (/dev/null bound
//    over a file, an empty read-only tmpfs over a directory); paths the kernel lacks skipped;
//  - nodev on the rootfs, on every bind/tmpfs mount and on the /dev tmpfs, whose nodes are
//    bind mounts of their own that keep device access: mknod works (CAP_MKNOD, as docker) but
//    no node the command makes can be opened — cbuild's stand-in for docker's device cgroup;
//  - Docker's default capability bounding set (and, for uid 0, the same permitted/effective
//    set; no inheritable or ambient ones); every other capability is dropped;
//  - docker's default seccomp policy (seccomp_filter.h), loaded right before the command's
//    exec; no_new_privs is not set (as docker), so setuid programs work;
//  - a tiny PID 1 (cbuild's own) that reaps zombies and forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/
//    SIGUSR1/SIGUSR2 to the command. The command's exit ends the run; leftover processes die
//    with the PID namespace. /proc/1/cmdline reads "cbuild-init" (NUL-padded) and PID 1's
//    environment area holds only NULs: never cbuild's argv or environment. PID 1 has SIGKILL as parent-death signal: when
//    cbuild dies (even by SIGKILL), the namespace dies with it. The kernel sends that signal
//    when the *thread* that called run() exits, which it cannot do before run() returns —
//    run() blocks until PID 1 is reaped.
//
// Mount-point stubs: when /proc, /sys, /dev, a mount target or an init file is missing in the
// rootfs, an empty directory or file is created there first (inside the root, through
// safe_path.h, with missing parents 0755) — so in an overlay they land in the upper dir.
// stub_paths(spec) lists every path the sandbox may have created that way; pass them to
// DiffOptions::exclude. Parent directories created for a stub are not listed: they stay in a
// layer, as they do with docker. With keep_directory_stubs, directory mount points of `binds`
// and `tmpfs` are not listed either (docker 20.10's BuildKit commits those and drops only the
// empty file stubs).
//
// Failure model: the parent prepares everything that allocates; after clone the child only
// makes system calls. A failure before exec comes back as a fixed record (step, errno) and is
// thrown here as cbuild::Error naming the step ("sandbox: chdir to \"/app\": No such file or
// directory"); a missing command is NotFound. Once the command runs, its exit status is
// returned, never thrown. A timeout throws Timeout and cancellation (cbuild::cancel_requested())
// throws Cancelled — both after killing the whole process tree (SIGKILL to PID 1 kills the
// namespace) and reaping it; nothing stays mounted because every mount lives in the dead
// namespace. Requires root (CAP_SYS_ADMIN) and a kernel with seccomp filters. Root of a user
// namespace (rootless, user_namespace.h) is enough: /dev's nodes are then binds of cbuild's
// own, /sys a read-only bind when the network is the host's, supplementary groups are kept as
// inherited where setgroups is denied, and a `user` whose id is not mapped fails naming it.
// Thread-safe: concurrent runs are independent.
// The caller keeps ownership of the stdio fds (they are dup'ed into the command).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cbuild::overlay {

enum class NetworkMode { Host, None };

struct ResourceLimits {
  std::optional<std::uint64_t> memory_bytes;  // --memory
  std::optional<double> cpus;                 // --cpus (e.g. 1.5)
  std::optional<std::uint64_t> pids;          // --pids-limit
  bool empty() const noexcept { return !memory_bytes && !cpus && !pids; }
};

struct BindMount {
  std::filesystem::path source;  // on the host
  std::string target;            // inside the rootfs (resolved inside it)
  bool readonly = false;
  // When >= 0, the mount binds what this open fd (O_PATH is enough) refers to — its mount
  // tree cloned with open_tree(2) and attached in the run's namespace — and `source` only
  // names it in messages. A caller that resolved the source inside an untrusted tree
  // (safe_path.h) passes the fd, so a symlink swapped in after resolving cannot redirect the
  // mount. The caller keeps the fd open during run(); the command never inherits it.
  int source_fd = -1;
};

struct TmpfsMount {
  std::string target;                       // inside the rootfs
  std::optional<std::uint64_t> size_bytes;  // nullopt: the kernel's default (half of RAM)
};

// A file mounted read-only at `target`, written by the sandbox into a tmpfs that only the
// run's mount namespace ever sees (mounted nosuid, nodev, noexec), so its content never
// touches a disk nor the host's mount table.
struct SecretFile {
  std::string target;   // inside the rootfs
  std::string content;  // at most kMaxSecretBytes
  std::uint32_t mode = 0400;
  std::uint32_t uid = 0, gid = 0;
};
inline constexpr std::size_t kMaxSecretBytes = 500 * 1024;  // BuildKit's limit

struct RunSpec {
  std::filesystem::path rootfs;
  std::vector<std::string> argv;  // non-empty
  std::vector<std::string> env;   // "KEY=VALUE"
  std::string cwd = "/";
  std::string user;               // "", "name", "uid", "name:group", "uid:gid"; "" is root
  std::string hostname = "cbuild";
  NetworkMode network = NetworkMode::Host;
  // Host directory whose etc/hosts, etc/resolv.conf, etc/hostname (the ones present) are
  // bind-mounted over the rootfs' (init_layer.h makes it). Empty: none.
  std::filesystem::path init_files;
  std::vector<BindMount> binds;
  std::vector<TmpfsMount> tmpfs;
  std::vector<SecretFile> secrets;
  // stub_paths() leaves out directory mount points of binds and tmpfs (see above).
  bool keep_directory_stubs = false;
  int stdin_fd = -1;   // -1: /dev/null
  int stdout_fd = 1;
  int stderr_fd = 2;
  std::optional<std::chrono::milliseconds> timeout;
  ResourceLimits limits;
};

struct ExitStatus {
  int code = 0;    // the exit code, or 128+N when killed by signal N
  int signal = 0;  // N when killed by a signal, else 0
  bool ok() const noexcept { return code == 0; }
};

// The ExitStatus of a waitpid() status (exited or killed by a signal).
ExitStatus exit_status_of(int wait_status) noexcept;

class Sandbox {
 public:
  // Runs spec.argv to completion. Throws cbuild::Error as described above.
  static ExitStatus run(const RunSpec& spec);
  // Paths (relative to the rootfs, e.g. "proc", "etc/hosts") that run() creates as mount-point
  // stubs when missing. Usable before or after run(); only stats bind sources (to tell a
  // directory mount point from a file one under keep_directory_stubs).
  static std::vector<std::string> stub_paths(const RunSpec& spec);
};

}  // namespace cbuild::overlay
