// HttpClient — the one HTTP exchange the registry client needs: a request (method, URL,
// headers, optional streamed body) and a reply (status, headers, body). 2xx bodies can be
// streamed into a ByteSink; other bodies are collected (capped) so errors can be parsed.
//
// Redirects are NOT followed here: the caller (Transport) follows them so it can drop the
// Authorization header when the host changes. Implementations are thread-safe: several
// threads may call send() at once (each call is independent).
//
// send() throws ConnectionError when no HTTP reply was received (DNS, refused, reset,
// TLS handshake, timeout), Error{Cancelled} on Ctrl-C, and rethrows what a sink throws.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "oci/base/error.h"
#include "oci/stream.h"

namespace cbuild::registry {

// Where TLS trust comes from for one host (see certs.d handling in transport.cpp).
struct TlsSettings {
  bool verify = true;
  std::vector<std::string> extra_ca_files;  // added to the system CA bundle
  std::string client_cert;                  // PEM file, or empty
  std::string client_key;                   // PEM file, or empty
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // sent as "Name: value"
  // Request body: `body` unless `body_source` is set, in which case exactly body_size bytes
  // are read from it; body_size -1: the source is read until it ends, and the body is sent
  // with chunked transfer encoding (its length is not known when the request starts).
  std::string body;
  oci::ByteSource* body_source = nullptr;
  std::int64_t body_size = 0;
  // When set and true, the exchange is abandoned (Error{Cancelled}), as on Ctrl-C.
  const std::atomic<bool>* abort = nullptr;
  // When set, a 2xx reply's body goes here instead of HttpResponse::body.
  oci::ByteSink* response_sink = nullptr;
  TlsSettings tls;
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;  // abort when fewer than 1 byte/s move for this long
  long total_timeout_s = 0;   // 0 = none (blobs may be large)
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, in order
  std::string body;             // non-2xx bodies, or 2xx bodies when no sink was given
  std::uint64_t body_bytes = 0;  // bytes received for the body (sink or string)

  // First value of a header (name is case-insensitive), or "".
  std::string header(std::string_view name) const;
  std::vector<std::string> header_all(std::string_view name) const;
};

// No HTTP reply was received. tls_failure is true when the TLS handshake itself failed (the
// peer speaks plain HTTP, or the certificate was refused), which is when a loopback registry
// may be retried over plain HTTP.
class ConnectionError : public Error {
 public:
  ConnectionError(ErrorKind kind, std::string message, bool tls_failure, bool bytes_received)
      : Error(kind, std::move(message)), tls_failure_(tls_failure), partial_(bytes_received) {}
  bool tls_failure() const noexcept { return tls_failure_; }
  // True when part of a reply body had already been delivered when the connection broke.
  bool partial() const noexcept { return partial_; }

 private:
  bool tls_failure_;
  bool partial_;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual HttpResponse send(const HttpRequest& req) = 0;
};

}  // namespace cbuild::registry
