// Isolation — which way RUN steps and snapshots can work for this process, and why.
//
// Levels (`--isolation`):
//  - Userns: the namespace sandbox (sandbox.h) over overlay snapshots. Root with
//    CAP_SYS_ADMIN runs it directly; anybody else first enters a user namespace
//    (IsolationChoice::enter_userns), which the process must be allowed to create.
//  - Chroot: no new namespaces and no mounts, for containers whose seccomp profile blocks
//    unshare/mount (docker's default): the stage's rootfs is a plain directory, RUN runs in a
//    chroot of it as the container's own root, and a step's layer is the directory's diff
//    against its state before the step (chroot_run.h, tree_diff.h). Needs uid 0 with
//    CAP_SYS_CHROOT and CAP_CHOWN; the host's network only.
//
// probe_isolation() asks the kernel (a short-lived child tries unshare(CLONE_NEWUSER), unless
// the process is root with CAP_SYS_ADMIN); choose_isolation() is a pure function of the
// request and the probe, so every rule is unit-tested with made-up probes. Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace cbuild::overlay {

enum class IsolationRequest { Auto, Userns, Chroot };
enum class Isolation { Userns, Chroot };

// "auto", "userns", "chroot"; anything else is InvalidArgument naming `flag`.
IsolationRequest parse_isolation(std::string_view value, std::string_view flag = "--isolation");
const char* to_string(Isolation level) noexcept;

// What this process may do.
struct IsolationProbe {
  unsigned uid = 0;            // effective
  bool cap_sys_admin = false;  // effective set
  bool cap_sys_chroot = false;
  bool cap_chown = false;
  // CAP_FSETID: without it a chroot RUN's writes clear setuid/setgid bits and its chmod g+s
  // of a file whose group it is not in is ignored (writes_keep_setid()).
  bool cap_fsetid = true;
  // unshare(CLONE_NEWUSER) succeeds. Not probed (false, no error) for root with CAP_SYS_ADMIN,
  // for which choose_isolation() never reads it.
  bool userns = false;
  std::string userns_error;    // why not, e.g. "unshare(CLONE_NEWUSER): Operation not permitted"
};

IsolationProbe probe_isolation();

// Whether this process's writes keep a file's setuid/setgid bits: it has CAP_FSETID in the
// initial user namespace (the kernel clears the bits on a write otherwise). A chroot RUN has
// cbuild's capabilities, so this tells whether its writes keep them.
bool writes_keep_setid();

struct IsolationChoice {
  Isolation level = Isolation::Userns;
  // Userns only: the process must enter a user namespace first (it is not root with
  // CAP_SYS_ADMIN). The rootless entry (newuidmap …) does that before any snapshot work.
  bool enter_userns = false;
  // One line for the user: the level and why ("chroot: this process may not create user
  // namespaces (…), so RUN steps run in a chroot …").
  std::string reason;
};

// The level for `request`. Throws FailedPrecondition with one message naming what is missing
// and the flag or setting that would give it: a level that was asked for and cannot work, or
// (Auto) when neither can. `source` is where the request came from (the flag, or the
// CBUILD_ISOLATION variable), named in the reason and in those messages.
IsolationChoice choose_isolation(IsolationRequest request, const IsolationProbe& probe,
                                 std::string_view source = "--isolation");

}  // namespace cbuild::overlay
