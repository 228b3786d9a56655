// Chroot run — a RUN step at the chroot isolation level (isolation.h): no new namespaces and
// no mounts, for containers that may not create them.
//
// run_in_chroot(spec) runs spec.argv with spec.rootfs (a plain directory, not a mount) as
// root directory: fork, chroot, chdir to spec.cwd (created when missing, as docker does),
// setgroups/setgid/setuid to spec.user (resolved in the rootfs' passwd/group, user_db.h),
// umask 022, env exactly spec.env plus PATH and HOME when missing, argv[0] searched in PATH.
// The command shares this process's network, PID space and capabilities (those of the
// container cbuild runs in): a chroot is not a security boundary against a root command.
//
// So that the command finds what a RUN expects, the rootfs is furnished for the run and
// restored afterwards: the init files of spec.init_files are written over etc/hosts,
// etc/resolv.conf, etc/hostname (an existing regular file gets its content and times back; a
// missing one is removed again; a symlink or other non-file is left as it is), missing proc,
// sys and dev become empty directories (removed again), and dev/null, zero, full, random,
// urandom and tty are made as device nodes when missing (removed again; needs CAP_MKNOD), and
// the files of read-only binds of a directory straight under /dev (RUN here-document scripts at
// /dev/pipes) are copied there (removed again; /dev never reaches a layer).
// /proc and /sys stay empty: nothing is mounted. Callers leave Sandbox::stub_paths(spec) out of
// the step's diff, as for the namespace sandbox.
//
// Refused with FailedPrecondition before anything runs, because this level cannot honour
// them: network None, other binds, tmpfs and secret mounts (RUN --mount), resource limits.
// A failure before exec throws like Sandbox::run ("sandbox: chroot …"; a missing command is
// NotFound); then the exit status is returned. Cancellation and spec.timeout kill the
// command's process group (SIGKILL) and throw Cancelled / Timeout; processes the command
// left in its group are killed when it exits. Thread-safe for different rootfs directories.
#pragma once

#include "overlay/sandbox.h"

namespace cbuild::overlay {

ExitStatus run_in_chroot(const RunSpec& spec);

}  // namespace cbuild::overlay
