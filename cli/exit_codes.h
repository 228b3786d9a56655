// Exit codes: 0 success, 1 failure, 2 usage error (a bad flag, or a UsageError). Signals (Ctrl-C) exit 130 like a shell.
#pragma once

#include "oci/base/error.h"

namespace cbuild::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInterrupted = 130;

// Bad input the command line parser cannot see (a variable the command reads, a value checked
// after parsing): reported and exited like a parse error.
class UsageError : public Error {
 public:
  explicit UsageError(const Error& e) : Error(ErrorKind::InvalidArgument, e.message()) {}
};

inline int exit_code_for(ErrorKind kind) noexcept {
  return kind == ErrorKind::Cancelled ? kExitInterrupted : kExitFailure;
}

}  // namespace cbuild::cli
