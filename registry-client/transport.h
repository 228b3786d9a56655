// Transport — talks to one registry host: chooses https or http, authenticates (Basic, Bearer
// with anonymous/basic/refresh-token token requests, tokens cached per scope), follows
// redirects without leaking Authorization to another host, and retries temporary failures
// (connection errors before any body byte, 408, 429 with Retry-After, 5xx) with backoff.
//
// Scheme choice: HTTPS with the system CAs plus certs.d CAs and client certs. Plain HTTP is
// only tried when the registry is "insecure" (loopback, or --tls-verify=false) AND the TLS
// handshake failed; --tls-verify=false also accepts unverified certificates. Such a host that
// answered over plain HTTP is remembered for the rest of the process, and its next transports
// try HTTP first (a 400 or a connection failure there falls back to the order above).
// certs.d directories: $CBUILD_CERTS_DIRS (colon-separated) if set, else
// /etc/containers/certs.d and /etc/docker/certs.d; per host "HOST[:PORT]/": *.crt are CAs,
// NAME.cert + NAME.key a client certificate.
//
// Thread-safe: one Transport is shared by the threads moving blobs of one pull or push.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "registry-client/auth_challenge.h"
#include "registry-client/credentials.h"
#include "registry-client/http.h"

namespace cbuild::registry {

struct TransportOptions {
  bool tls_verify = true;  // false: --tls-verify=false (plain HTTP and unverified TLS allowed)
  std::optional<Credentials> credentials;  // explicit credentials (login); else the store's
  std::shared_ptr<const CredentialStore> credential_store;  // may be null: anonymous
  std::string credential_key;  // key for the store (Reference::credential_key())
  std::shared_ptr<HttpClient> http;  // default: a CurlHttp
  int max_attempts = 5;
  std::chrono::milliseconds backoff{250};
  std::chrono::seconds max_retry_after{30};
  std::vector<std::filesystem::path> certs_dirs;  // empty: the defaults above
};

// One API call. `path` is "/v2/…" (relative to the registry) or an absolute URL (an upload
// Location). `scopes` are token scopes ("repository:foo/bar:pull,push").
struct Call {
  std::string method = "GET";
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> scopes;
  std::string body;
  // A streamed body: opened again for each attempt (so retries resend from the start).
  std::function<std::unique_ptr<oci::ByteSource>()> open_body;
  std::int64_t body_size = 0;  // -1: unknown, sent chunked (HttpRequest)
  oci::ByteSink* response_sink = nullptr;  // 2xx body; when set, no retry after bytes arrived
  const std::atomic<bool>* abort = nullptr;  // HttpRequest::abort
  std::string what;  // for messages: "pull \"localhost:5000/x:1\""
};

class Transport {
 public:
  // `host` is the API host with optional port ("registry-1.docker.io", "127.0.0.1:5000").
  Transport(std::string host, TransportOptions opts);

  // Performs the call and returns the final reply, whatever its status (after redirects, auth
  // and retries). Throws ConnectionError / RegistryError (token endpoint) / Cancelled.
  HttpResponse send(const Call& call);

  // GET /v2/ and authenticate with the given scopes; throws a RegistryError naming the host
  // when the credentials are refused. Used by `cbuild login`.
  void check_login(const std::vector<std::string>& scopes);

  // "https://host" or "http://host" (pings the registry on first use).
  std::string base_url();
  const std::string& host() const { return host_; }

 private:
  struct Ping {
    std::string base_url;
    std::optional<AuthChallenge> challenge;
  };
  const Ping& ping();
  TlsSettings tls_for(const std::string& authority) const;
  std::optional<std::string> authorization(const std::vector<std::string>& scopes, bool refresh,
                                           const std::string& what);
  std::string fetch_token(const AuthChallenge& ch, const std::vector<std::string>& scopes, const std::string& what);
  HttpResponse send_once(const Call& call, const std::string& url, const std::optional<std::string>& auth);
  std::optional<Credentials> creds();

  std::string host_;
  TransportOptions opts_;
  bool insecure_;
  std::mutex mu_;
  std::mutex ping_mu_;  // held while pinging (see ping())
  // Serialises token requests so threads that need the same scope at once share one token.
  std::mutex token_fetch_mu_;
  std::optional<Ping> ping_;
  std::map<std::string, std::pair<std::string, std::chrono::steady_clock::time_point>> tokens_;
  std::optional<std::optional<Credentials>> creds_;
};

// Throws the RegistryError for `resp` unless its status is one of `ok`.
void expect_status(const HttpResponse& resp, std::initializer_list<int> ok, std::string_view what,
                   std::string_view host);

// Resolves a Location header against the URL of the request that returned it.
std::string resolve_url(std::string_view base, std::string_view location);
// `url` with "key=value" `kv` added to its query.
std::string with_query(const std::string& url, const std::string& kv);
// "scheme://authority" of a URL.
std::string url_origin(std::string_view url);
// True for localhost, 127.0.0.0/8 and ::1 (with or without a port).
bool is_loopback_host(std::string_view host);

}  // namespace cbuild::registry
