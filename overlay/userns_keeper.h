// The user-namespace keeper: a rootless command's namespace outlives it, so the next commands
// of the same user join it instead of paying for newuidmap/newgidmap again (as rootless
// podman's pause process does).
//
// State lives in $XDG_RUNTIME_DIR/cbuild/ only: the variable must name a directory owned by
// the user and writable by nobody else (as systemd-logind makes it), and cbuild/ below it
// likewise (made 0700 when missing). Without it, keeper_state_dir() is -1 and every command
// makes its own namespace as before.
//
// The record ("userns", replaced atomically) names the keeper: its pid, its start time (field
// 22 of /proc/PID/stat), the inode of its user namespace, and the uid/gid maps it was made
// with. try_join_keeper() joins only when all of these still hold: the pid's start time and
// namespace inode are the recorded ones, the namespace is owned by this uid and is a child of
// this process's user namespace, and its uid_map and gid_map are exactly `uid_map`/`gid_map`
// (what this command would map now, so an edited /etc/subuid is honoured). Joining is
// setns(CLONE_NEWUSER) then unshare(CLONE_NEWNS): each command still has a mount namespace
// of its own. Anything else leaves the process where it was and returns false.
//
// start_keeper() is called by the process that has just made and mapped a user namespace
// (but not yet its mount namespace, so the keeper holds no mount namespace of cbuild's):
// under the state dir's lock it forks a detached keeper (new session, cwd /, no fds, every
// signal blocked but SIGTERM and SIGKILL, pause() forever) and records it. Before that,
// still in the outer namespace, stop_recorded_keeper() sends SIGTERM to the keeper the old
// record names when it verifiably is this user's (start time, namespace inode, owner, parent,
// through a pidfd); processes already in its namespace keep it. A keeper is a convenience:
// these functions never throw (but for the one step past which there is no way back:
// unshare(CLONE_NEWNS) after a successful setns), and any failure leaves the command as it
// would be without.
#pragma once

#include <string>

namespace cbuild::overlay {

// An fd of the state directory (O_PATH-free, O_DIRECTORY, close-on-exec), or -1.
int keeper_state_dir();

// Maps are compared as "inside outside count" triples, one per line, in order.
bool try_join_keeper(int state_dir, const std::string& uid_map, const std::string& gid_map);

// Takes the state dir's lock (waiting at most a fraction of a second); -1 when not taken.
int lock_keeper_state(int state_dir);

void stop_recorded_keeper(int state_dir);
void start_keeper(int state_dir, const std::string& uid_map, const std::string& gid_map);

}  // namespace cbuild::overlay
