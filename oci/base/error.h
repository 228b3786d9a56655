// cbuild::Error — the one exception type every module throws.
//
// An Error carries a closed ErrorKind (what the caller may do about it), an optional errno,
// and a message that names the operation and the quoted path or reference. Context is added
// once per module boundary with with_context(), which prefixes "context: " to the message.
// cli/main.cpp prints what() as one line and maps kind() to an exit code.
//
// When absence is a normal answer, APIs return std::optional instead of throwing NotFound.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cbuild {

enum class ErrorKind {
  InvalidArgument,     // the input is malformed (bad digest, bad Dockerfile, bad flag value)
  NotFound,            // a file, blob, image or tag does not exist
  AlreadyExists,
  FailedPrecondition,  // the state does not allow it (e.g. --root is not an OCI layout)
  PermissionDenied,
  Unauthenticated,     // credentials missing or refused
  Unavailable,         // a server or resource cannot be reached; retrying may help
  DataLoss,            // digest or size mismatch, truncated or corrupt data
  ResourceExhausted,   // disk full, quota, too many files
  Cancelled,           // Ctrl-C or an explicit cancel
  Timeout,
  Internal,            // a bug or an unexpected system failure
};

const char* to_string(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, int sys_errno = 0);

  ErrorKind kind() const noexcept { return kind_; }
  // errno captured where the failure happened, or 0.
  int sys_errno() const noexcept { return errno_; }
  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& message() const noexcept { return message_; }

  // Prefixes "context: " to the message. Returns *this so it can be rethrown: `throw e.with_context(..)`.
  Error& with_context(std::string_view context);

 private:
  ErrorKind kind_;
  int errno_;
  std::string message_;
};

// The ErrorKind that best describes an errno value (ENOENT → NotFound, ENOSPC → ResourceExhausted…).
ErrorKind kind_from_errno(int err) noexcept;

// Throws Error{kind_from_errno(err), "<op> \"<path>\": <strerror>", err}. Path may be empty.
[[noreturn]] void throw_errno(std::string_view op, std::string_view path, int err = errno);

// Quotes a path or name for messages: "a b" → "\"a b\"".
std::string quote(std::string_view s);

}  // namespace cbuild
