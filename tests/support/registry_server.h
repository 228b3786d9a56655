// RegistryServer — a real CNCF distribution registry (Debian's `docker-registry`) started on
// 127.0.0.1 on a free port for one test, stopped (SIGTERM, then SIGKILL) by the destructor.
//
// Modes:
//   Plain        plain HTTP, no auth.
//   TlsHtpasswd  HTTPS with a certificate from a throw-away CA, Basic auth against an htpasswd
//                (bcrypt) file holding user()/password(). certs_dir() is a certs.d-style folder
//                ("127.0.0.1:PORT/ca.crt") for TransportOptions::certs_dirs / CBUILD_CERTS_DIRS.
//   Token        plain HTTP with Docker-Hub-style token auth: a token issuer (a thread of this
//                fixture on its own loopback port) hands out RS256 JWTs signed by a throw-away
//                key whose certificate the registry trusts. GET with Basic user()/password()
//                grants pull,push; anonymous GET grants pull only; POST grant_type=refresh_token
//                with refresh_token() (docker's identity token) grants pull,push. Wrong
//                credentials get 401. token_requests() counts the issuer's requests.
// Storage lives in a TempDir owned by the server. Throws std::runtime_error when the registry
// does not come up (its log is in the message).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <sys/types.h>

#include "oci/base/fs.h"

namespace cbuild::test {

class RegistryServer {
 public:
  enum class Mode { Plain, TlsHtpasswd, Token };
  explicit RegistryServer(Mode mode = Mode::Plain);
  ~RegistryServer();
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  // "127.0.0.1:PORT"
  std::string host() const;
  int port() const { return port_; }
  Mode mode() const { return mode_; }
  const std::string& user() const { return user_; }
  const std::string& password() const { return password_; }
  std::filesystem::path certs_dir() const { return dir_.path() / "certs.d"; }
  std::filesystem::path ca_cert() const { return dir_.path() / "tls" / "ca.crt"; }
  std::filesystem::path storage_dir() const { return dir_.path() / "storage"; }
  std::string log() const;
  const std::string& refresh_token() const { return refresh_token_; }
  int token_requests() const;
  // Token mode: stops the token issuer only (the registry keeps running).
  void stop_token_issuer();

  // Stops the registry now (idempotent); the storage stays.
  void stop();
  // Starts it again on the same port with the same storage and config.
  void start();

 private:
  Mode mode_;
  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string user_ = "tester";
  std::string password_ = "s3cret-pass";
  std::string refresh_token_ = "refresh-0123456789";
  struct Issuer;
  std::unique_ptr<Issuer> issuer_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_loopback_port();
// True when something accepts TCP connections on 127.0.0.1:port.
bool loopback_port_open(int port);

}  // namespace cbuild::test
