// RegistryError — a cbuild::Error raised by the registry client for an HTTP reply that is not
// what the distribution API promised. It carries the HTTP status, the OCI error codes from the
// JSON body ({"errors":[{"code":..}]}: MANIFEST_UNKNOWN, UNAUTHORIZED, …) and whether a retry
// may help (connection errors, 408, 429, 5xx).
//
// The message is one line: "<operation> <reference>: <registry> answered <status> <CODE>: <msg>".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/base/error.h"

namespace cbuild::registry {

class RegistryError : public Error {
 public:
  RegistryError(ErrorKind kind, std::string message, int http_status, std::vector<std::string> codes,
                bool temporary);

  int http_status() const noexcept { return status_; }
  const std::vector<std::string>& codes() const noexcept { return codes_; }
  bool has_code(std::string_view code) const;
  // True when retrying the same request may succeed.
  bool temporary() const noexcept { return temporary_; }

 private:
  int status_;
  std::vector<std::string> codes_;
  bool temporary_;
};

// True for statuses where a retry may help: 408, 429 and 5xx.
bool is_temporary_status(int status) noexcept;

// Builds the error for an unexpected reply. `operation` names what was done and to which
// reference ("pull manifest \"docker.io/library/x:1\""), `body` is the (possibly JSON, possibly
// HTML) reply body, `content_type` its Content-Type. Never throws anything but the result.
RegistryError error_from_reply(std::string_view operation, std::string_view registry, int status,
                               std::string_view content_type, std::string_view body);

}  // namespace cbuild::registry
