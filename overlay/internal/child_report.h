// The fixed-size record the sandbox child sends its parent when a step fails before exec.
// Written with one write(2) on a SOCK_SEQPACKET socket, so it arrives whole or not at all;
// EOF without a record means exec succeeded (the socket is close-on-exec).
#pragma once

#include <cstdint>

namespace cbuild::overlay::internal {

enum class Step : std::int32_t {
  WaitParent = 1,
  MakePrivate,
  BindRoot,
  MountProc,
  MountSys,
  MountDev,
  MakeDevNodes,
  MountDevpts,
  MountShm,
  BindMounts,
  MountSecrets,
  Hostname,
  LoopbackUp,
  PivotRoot,
  Fork,
  Stdio,
  Groups,
  SetGid,
  SetUid,
  Capabilities,
  Umask,
  Chdir,
  Exec,
  ParentDeath,
  ReadonlyPaths,
  MaskPaths,
  Seccomp,
};

struct ChildReport {
  Step step;
  std::int32_t err;   // errno
  std::int32_t index; // which mount/path for steps that have several, else -1
};

// A human name for the step ("mount /proc"), for the parent's error message.
const char* step_name(Step s) noexcept;

}  // namespace cbuild::overlay::internal
