// Everything the sandbox child needs, prepared by the parent before clone so that the child
// only reads it (no allocation, no exceptions after clone). Internal to the overlay module.
#pragma once

#include <linux/filter.h>
#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "oci/base/unique_fd.h"

namespace cbuild::overlay::internal {

struct ChildBind {
  std::string source;  // host path; empty (and tree_fd < 0): a fresh tmpfs
  int tree_fd = -1;    // >= 0: attach this detached mount tree (open_tree) instead of `source`
  std::string target;  // canonical absolute host path of the stub inside the rootfs
  bool readonly = false;
  std::string tmpfs_options;  // tmpfs: the mount data ("mode=1777[,size=N]")
  // Non-empty: the target lies under /dev, on the tmpfs the child mounts there, so the child
  // creates these path components below it (directories, the last one a file unless `dir`)
  // after mounting /dev; `target` is then that path, not a stub in the image.
  std::vector<std::string> dev_components;
  bool dir = false;
};

struct ChildSecret {
  std::string staged;   // the file to write, inside secret_dir
  std::string target;   // canonical absolute host path of the stub inside the rootfs
  std::string content;
  mode_t mode = 0400;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct ChildPlan {
  // Canonical absolute host paths (no symlinks), all inside `rootfs`.
  std::string rootfs, proc, sys, dev;
  std::vector<ChildBind> binds;
  // The tree_fds of binds (sorted): kept open through close_other_fds, closed right after
  // the bind mounts so neither PID 1 nor the command holds them. The parent owns them
  // (tree_owners) and closes its copies when the run is over.
  std::vector<int> bind_fds;
  std::vector<UniqueFd> tree_owners;
  // Secrets: a private tmpfs mounted on secret_dir (an empty host directory) in the child's
  // namespace only; each file written there, then bound read-only at its target.
  std::string secret_dir, secret_tmpfs_options;
  std::vector<ChildSecret> secrets;
  // Kernel files of the fresh /proc and /sys the command must not write (bound read-only onto
  // themselves) or read (a file masked by binding `dev_null` over it, a directory by an empty
  // read-only tmpfs). Canonical host paths; the child skips those the kernel lacks.
  std::vector<std::string> readonly_paths, masked_paths;
  std::string dev_null;  // the sandbox's own /dev/null node, once /dev is mounted
  std::string hostname;
  bool net_none = false;
  // Running in a user namespace (rootless): device nodes cannot be made, so /dev's nodes are
  // bound from cbuild's own /dev; when setgroups is denied (a one-id mapping) the command
  // keeps the supplementary groups it inherits, none of which is mapped.
  bool userns = false;
  bool setgroups_denied = false;
  bool devpts_gid_tty = true;  // gid 5 (tty) is mapped: /dev/pts nodes get it, as in docker

  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string cwd;  // absolute, inside the new root

  // Candidate paths of the program inside the new root (PATH search done by the parent),
  // tried in order until one is not ENOENT; argv/envp are null-terminated views into storage.
  std::vector<std::string> exec_candidates;
  std::vector<std::string> argv_storage, env_storage;
  std::vector<char*> argv, envp;

  int stdin_fd = -1, stdout_fd = 1, stderr_fd = 2;
  int cap_last = 40;            // /proc/sys/kernel/cap_last_cap
  std::uint64_t keep_caps = 0;  // bit N: keep capability N
  // The seccomp program (seccomp_filter.h), loaded by the command's process before it gives
  // up root, while it still holds CAP_SYS_ADMIN: no_new_privs is not needed, so setuid
  // programs keep working, as under docker.
  const sock_fprog* seccomp = nullptr;
  // Where this process's argument and environment strings lie (/proc/self/stat), which PID 1
  // overwrites in its copy so /proc/1/cmdline shows none of cbuild's.
  std::uintptr_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
};

// Runs in the cloned child (PID 1 of the new namespace). Never returns; never throws; does not
// allocate. `sock` is the report socket, `status_fd` the pipe for the command's wait status.
[[noreturn]] void child_main(const ChildPlan& plan, int sock, int status_fd) noexcept;

// The init loop of PID 1 once the command `main_pid` runs: reaps every child, forwards
// termination signals to `main_pid`, and when it exits writes its raw wait status to
// `status_fd` and exits with the code (or 128+signal). The signals of pid1_signal_set() must
// be blocked before the fork.
[[noreturn]] void pid1_main(pid_t main_pid, int status_fd) noexcept;

// The signals PID 1 blocks and forwards (plus SIGCHLD, which it only uses for reaping).
void pid1_signal_set(sigset_t* out) noexcept;

}  // namespace cbuild::overlay::internal
