#include "oci/base/error.h"

#include <cstring>

namespace cbuild {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "invalid argument";
    case ErrorKind::NotFound: return "not found";
    case ErrorKind::AlreadyExists: return "already exists";
    case ErrorKind::FailedPrecondition: return "failed precondition";
    case ErrorKind::PermissionDenied: return "permission denied";
    case ErrorKind::Unauthenticated: return "unauthenticated";
    case ErrorKind::Unavailable: return "unavailable";
    case ErrorKind::DataLoss: return "data loss";
    case ErrorKind::ResourceExhausted: return "resource exhausted";
    case ErrorKind::Cancelled: return "cancelled";
    case ErrorKind::Timeout: return "timeout";
    case ErrorKind::Internal: return "internal";
  }
  return "unknown";
}

Error::Error(ErrorKind kind, std::string message, int sys_errno)
    : std::runtime_error(message), kind_(kind), errno_(sys_errno), message_(std::move(message)) {}

Error& Error::with_context(std::string_view context) {
  message_ = std::string(context) + ": " + message_;
  return *this;
}

ErrorKind kind_from_errno(int err) noexcept {
  switch (err) {
    case ENOENT: case ENOTDIR: return ErrorKind::NotFound;
    case EEXIST: case ENOTEMPTY: return ErrorKind::AlreadyExists;
    case EACCES: case EPERM: case EROFS: return ErrorKind::PermissionDenied;
    case ENOSPC: case EDQUOT: case EMFILE: case ENFILE: case ENOMEM: return ErrorKind::ResourceExhausted;
    case EINVAL: case ENAMETOOLONG: case ELOOP: case EXDEV: return ErrorKind::InvalidArgument;
    case EINTR: case ECANCELED: return ErrorKind::Cancelled;
    case ETIMEDOUT: return ErrorKind::Timeout;
    case ECONNREFUSED: case ECONNRESET: case EHOSTUNREACH: case ENETUNREACH: case EAGAIN: case EBUSY:
      return ErrorKind::Unavailable;
    case EIO: return ErrorKind::DataLoss;
    default: return ErrorKind::Internal;
  }
}

std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

void throw_errno(std::string_view op, std::string_view path, int err) {
  std::string msg(op);
  if (!path.empty()) {
    msg += ' ';
    msg += quote(path);
  }
  msg += ": ";
  msg += std::strerror(err);
  throw Error(kind_from_errno(err), std::move(msg), err);
}

}  // namespace cbuild
