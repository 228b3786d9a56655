// Exit codes: 0 success, 1 failure, 2 usage error. Signals (Ctrl-C) exit 130 like a shell.
#pragma once

#include "oci/base/error.h"

namespace cbuild::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInterrupted = 130;

inline int exit_code_for(ErrorKind kind) noexcept {
  return kind == ErrorKind::Cancelled ? kExitInterrupted : kExitFailure;
}

}  // namespace cbuild::cli
