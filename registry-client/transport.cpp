#include "registry-client/transport.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "oci/base/cancel.h"
#include "registry-client/curl_http.h"
#include "registry-client/registry_error.h"

namespace cbuild::registry {

namespace {

std::string percent_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else { out += '%'; out += hex[c >> 4]; out += hex[c & 15]; }
  }
  return out;
}

std::string authority_of(std::string_view url) {
  auto p = url.find("://");
  if (p == std::string_view::npos) return {};
  auto rest = url.substr(p + 3);
  return std::string(rest.substr(0, rest.find_first_of("/?#")));
}

void sleep_cancellable(std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    check_cancelled();
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(50),
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()) +
            std::chrono::milliseconds(1)));
  }
}

bool is_redirect(int s) { return s == 301 || s == 302 || s == 303 || s == 307 || s == 308; }

std::string scopes_key(const std::vector<std::string>& scopes) {
  std::vector<std::string> s = scopes;
  std::sort(s.begin(), s.end());
  std::string k;
  for (const auto& x : s) k += x + " ";
  return k;
}

}  // namespace

bool is_loopback_host(std::string_view host) {
  std::string_view h = host;
  if (!h.empty() && h.front() == '[') {
    auto e = h.find(']');
    h = h.substr(1, e == std::string_view::npos ? h.size() - 1 : e - 1);
    return h == "::1";
  }
  if (h == "::1") return true;
  h = h.substr(0, h.find(':'));
  return h == "localhost" || h.rfind("127.", 0) == 0;
}

std::string with_query(const std::string& url, const std::string& kv) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + kv;
}

std::string url_origin(std::string_view url) {
  auto p = url.find("://");
  if (p == std::string_view::npos) return {};
  return std::string(url.substr(0, p + 3)) + authority_of(url);
}

std::string resolve_url(std::string_view base, std::string_view loc) {
  if (loc.rfind("http://", 0) == 0 || loc.rfind("https://", 0) == 0) return std::string(loc);
  if (loc.rfind("//", 0) == 0) return std::string(base.substr(0, base.find("://") + 1)) + std::string(loc);
  if (!loc.empty() && loc.front() == '/') return url_origin(base) + std::string(loc);
  // Relative to the directory of the base path.
  std::string b(base.substr(0, base.find_first_of("?#")));
  auto slash = b.rfind('/');
  return b.substr(0, slash + 1) + std::string(loc);
}

void expect_status(const HttpResponse& resp, std::initializer_list<int> ok, std::string_view what,
                   std::string_view host) {
  for (int s : ok)
    if (resp.status == s) return;
  throw error_from_reply(what, host, resp.status, resp.header("content-type"), resp.body);
}

Transport::Transport(std::string host, TransportOptions opts)
    : host_(std::move(host)), opts_(std::move(opts)), insecure_(!opts_.tls_verify || is_loopback_host(host_)) {
  if (!opts_.http) opts_.http = std::make_shared<CurlHttp>();
  if (opts_.certs_dirs.empty()) {
    if (const char* e = std::getenv("CBUILD_CERTS_DIRS"); e && *e) {
      std::string_view s(e);
      while (!s.empty()) {
        auto c = s.find(':');
        if (c != 0) opts_.certs_dirs.emplace_back(std::string(s.substr(0, c)));
        if (c == std::string_view::npos) break;
        s.remove_prefix(c + 1);
      }
    } else {
      opts_.certs_dirs = {"/etc/containers/certs.d", "/etc/docker/certs.d"};
    }
  }
}

TlsSettings Transport::tls_for(const std::string& authority) const {
  TlsSettings t;
  t.verify = opts_.tls_verify;
  std::error_code ec;
  for (const auto& dir : opts_.certs_dirs) {
    auto d = dir / authority;
    if (!std::filesystem::is_directory(d, ec)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(d, ec)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      if (f.extension() == ".crt") t.extra_ca_files.push_back(f.string());
      if (f.extension() == ".cert" && t.client_cert.empty()) {
        auto key = f;
        key.replace_extension(".key");
        if (std::filesystem::exists(key, ec)) { t.client_cert = f.string(); t.client_key = key.string(); }
      }
    }
  }
  return t;
}

std::optional<Credentials> Transport::creds() {
  std::lock_guard lk(mu_);
  if (!creds_) {
    if (opts_.credentials) creds_ = opts_.credentials;
    else if (opts_.credential_store && !opts_.credential_key.empty()) creds_ = opts_.credential_store->lookup(opts_.credential_key);
    else creds_ = std::optional<Credentials>{};
  }
  return *creds_;
}

namespace {

// Insecure hosts (loopback, or --tls-verify=false) that answered a ping over plain HTTP in this
// process: later transports to them (the cache import, the base pull and the push of one build
// each make their own) start with HTTP instead of paying a refused TLS handshake every time.
std::mutex g_plain_mu;
std::set<std::string> g_plain_hosts;

bool known_plain(const std::string& host) {
  std::lock_guard lk(g_plain_mu);
  return g_plain_hosts.count(host) > 0;
}

void remember_plain(const std::string& host) {
  std::lock_guard lk(g_plain_mu);
  g_plain_hosts.insert(host);
}

}  // namespace

const Transport::Ping& Transport::ping() {
  {
    std::lock_guard lk(mu_);
    if (ping_) return *ping_;
  }
  // One ping per transport: threads that start at once (a push's blobs) wait for the first.
  std::lock_guard pinging(ping_mu_);
  {
    std::lock_guard lk(mu_);
    if (ping_) return *ping_;
  }
  auto try_scheme = [&](const std::string& scheme) {
    HttpRequest req;
    req.url = scheme + "://" + host_ + "/v2/";
    req.tls = tls_for(host_);
    req.connect_timeout_s = 15;
    req.total_timeout_s = 60;
    return opts_.http->send(req);
  };
  Ping p;
  HttpResponse r;
  int attempt = 0;
  bool plain_first = insecure_ && known_plain(host_);
  while (true) {
    try {
      std::optional<HttpResponse> plain;
      if (plain_first) {
        try {
          plain = try_scheme("http");
        } catch (const ConnectionError&) {
        }
        // A server that now speaks TLS answers plain HTTP with 400: take the usual way.
        if (plain && plain->status == 400) plain.reset();
      }
      if (plain) {
        r = std::move(*plain);
        p.base_url = "http://" + host_;
      } else {
        try {
          r = try_scheme("https");
          p.base_url = "https://" + host_;
        } catch (const ConnectionError& e) {
          if (!insecure_ || !e.tls_failure()) throw;
          r = try_scheme("http");
          p.base_url = "http://" + host_;
        }
      }
      if (!is_temporary_status(r.status) || ++attempt >= opts_.max_attempts) break;
    } catch (const ConnectionError& e) {
      if (e.tls_failure() || ++attempt >= opts_.max_attempts)
        throw ConnectionError(e.kind(), "cannot reach registry " + quote(host_) + ": " + e.message(), e.tls_failure(), false);
    }
    sleep_cancellable(opts_.backoff * (1 << std::min(attempt, 5)));
  }
  if (r.status == 401) {
    p.challenge = pick_challenge(r.header_all("www-authenticate"));
  } else if (r.status != 200 && r.status != 404) {
    // 404 on /v2/ is tolerated: some proxies only route repository paths.
    throw error_from_reply("ping registry " + quote(host_), host_, r.status, r.header("content-type"), r.body);
  }
  if (p.base_url.rfind("http://", 0) == 0) remember_plain(host_);
  std::lock_guard lk(mu_);
  if (!ping_) ping_ = std::move(p);
  return *ping_;
}

std::string Transport::base_url() { return ping().base_url; }

std::string Transport::fetch_token(const AuthChallenge& ch, const std::vector<std::string>& scopes,
                                   const std::string& what) {
  const std::string realm = ch.param("realm");
  if (realm.empty())
    throw RegistryError(ErrorKind::Unauthenticated, what + ": " + host_ + " sent a Bearer challenge without a realm", 401,
                        {"UNAUTHORIZED"}, false);
  const std::string service = ch.param("service");
  auto c = creds();
  HttpRequest req;
  req.tls = tls_for(authority_of(realm));
  req.total_timeout_s = 60;
  if (c && !c->identity_token.empty()) {
    // OAuth2 refresh-token grant (docker's identity tokens).
    req.method = "POST";
    req.url = realm;
    req.body = "grant_type=refresh_token&client_id=cbuild&refresh_token=" + percent_encode(c->identity_token);
    if (!service.empty()) req.body += "&service=" + percent_encode(service);
    std::string sc;
    for (const auto& s : scopes) sc += (sc.empty() ? "" : " ") + s;
    if (!sc.empty()) req.body += "&scope=" + percent_encode(sc);
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  } else {
    std::string q;
    if (!service.empty()) q += "service=" + percent_encode(service);
    for (const auto& s : scopes) q += (q.empty() ? "" : "&") + std::string("scope=") + percent_encode(s);
    req.url = realm + (q.empty() ? "" : (realm.find('?') == std::string::npos ? "?" : "&") + q);
    if (c && !c->username.empty())
      req.headers.emplace_back("Authorization", "Basic " + base64_encode(c->username + ":" + c->password));
  }
  HttpResponse r;
  try {
    r = opts_.http->send(req);
  } catch (const ConnectionError& e) {
    throw RegistryError(ErrorKind::Unavailable, what + ": token endpoint " + quote(realm) + " unreachable: " + e.message(),
                        0, {}, true);
  }
  if (r.status != 200) {
    auto err = error_from_reply(what + ": token request to " + quote(realm), host_, r.status, r.header("content-type"), r.body);
    if (r.status == 401 || r.status == 403)
      throw RegistryError(ErrorKind::Unauthenticated, err.message() + (c ? "" : " (no credentials; run cbuild login)"),
                          r.status, err.codes().empty() ? std::vector<std::string>{"UNAUTHORIZED"} : err.codes(), false);
    throw err;
  }
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::string tok;
  if (j.is_object()) {
    if (j.contains("token") && j["token"].is_string()) tok = j["token"];
    else if (j.contains("access_token") && j["access_token"].is_string()) tok = j["access_token"];
  }
  if (tok.empty())
    throw RegistryError(ErrorKind::Unauthenticated, what + ": token endpoint " + quote(realm) + " answered without a token",
                        r.status, {}, false);
  int expires = j.is_object() && j.contains("expires_in") && j["expires_in"].is_number_integer() ? j["expires_in"].get<int>() : 60;
  std::lock_guard lk(mu_);
  tokens_[scopes_key(scopes)] = {tok, std::chrono::steady_clock::now() + std::chrono::seconds(std::max(expires - 10, 10))};
  return tok;
}

std::optional<std::string> Transport::authorization(const std::vector<std::string>& scopes, bool refresh,
                                                    const std::string& what) {
  const Ping& p = ping();
  if (!p.challenge) return std::nullopt;
  if (p.challenge->scheme == "basic") {
    auto c = creds();
    if (!c || c->username.empty()) return std::nullopt;
    return "Basic " + base64_encode(c->username + ":" + c->password);
  }
  if (!refresh) {
    std::lock_guard lk(mu_);
    auto it = tokens_.find(scopes_key(scopes));
    if (it != tokens_.end() && it->second.second > std::chrono::steady_clock::now()) return "Bearer " + it->second.first;
  }
  std::lock_guard fetch_lk(token_fetch_mu_);
  if (!refresh) {
    // Another thread may have fetched it while this one waited.
    std::lock_guard lk(mu_);
    auto it = tokens_.find(scopes_key(scopes));
    if (it != tokens_.end() && it->second.second > std::chrono::steady_clock::now()) return "Bearer " + it->second.first;
  }
  return "Bearer " + fetch_token(*p.challenge, scopes, what);
}

HttpResponse Transport::send_once(const Call& call, const std::string& url, const std::optional<std::string>& auth) {
  std::string cur = url;
  std::string method = call.method;
  for (int hop = 0; hop < 10; ++hop) {
    HttpRequest req;
    req.method = method;
    req.url = cur;
    req.headers = call.headers;
    const bool same_host = authority_of(cur) == host_;
    if (auth && same_host) req.headers.emplace_back("Authorization", *auth);
    req.tls = tls_for(authority_of(cur));
    req.response_sink = call.response_sink;
    req.abort = call.abort;
    std::unique_ptr<oci::ByteSource> src;
    if (method != "GET" && method != "HEAD") {
      if (call.open_body) {
        src = call.open_body();
        req.body_source = src.get();
        req.body_size = call.body_size;
      } else {
        req.body = call.body;
      }
    }
    HttpResponse r = opts_.http->send(req);
    if (!is_redirect(r.status)) return r;
    std::string loc = r.header("location");
    if (loc.empty()) return r;
    cur = resolve_url(cur, loc);
    if (r.status == 303) method = "GET";
  }
  throw RegistryError(ErrorKind::Unavailable, call.what + ": too many redirects from " + host_, 0, {}, false);
}

HttpResponse Transport::send(const Call& call) {
  const std::string url = call.path.rfind("http", 0) == 0 ? call.path : base_url() + call.path;
  bool refreshed = false;
  int attempt = 0;
  while (true) {
    check_cancelled();
    auto auth = authorization(call.scopes, false, call.what);
    HttpResponse r;
    try {
      r = send_once(call, url, auth);
    } catch (const ConnectionError& e) {
      if (e.partial() || ++attempt >= opts_.max_attempts) throw;
      sleep_cancellable(opts_.backoff * (1 << std::min(attempt, 5)));
      continue;
    }
    if (r.status == 401 && !refreshed && ping().challenge && ping().challenge->scheme == "bearer") {
      // The cached token may have expired or lack a scope: fetch a fresh one once.
      refreshed = true;
      {
        std::lock_guard lk(mu_);
        tokens_.erase(scopes_key(call.scopes));
      }
      continue;
    }
    if (is_temporary_status(r.status) && ++attempt < opts_.max_attempts && !(call.response_sink && r.body_bytes > 0 && r.status < 300)) {
      auto delay = opts_.backoff * (1 << std::min(attempt, 5));
      if (auto ra = r.header("retry-after"); !ra.empty() && std::isdigit(static_cast<unsigned char>(ra[0]))) {
        auto secs = std::chrono::seconds(std::atol(ra.c_str()));
        delay = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(secs, opts_.max_retry_after));
      }
      sleep_cancellable(delay);
      continue;
    }
    return r;
  }
}

void Transport::check_login(const std::vector<std::string>& scopes) {
  const Ping& p = ping();
  if (!p.challenge) return;  // the registry needs no login
  Call c;
  c.path = "/v2/";
  c.scopes = scopes;
  c.what = "login to " + quote(host_);
  auto auth = authorization(scopes, true, c.what);
  if (!auth)
    throw RegistryError(ErrorKind::Unauthenticated, c.what + ": no credentials given", 401, {"UNAUTHORIZED"}, false);
  HttpResponse r = send_once(c, base_url() + "/v2/", auth);
  if (r.status == 401)
    throw error_from_reply(c.what + " refused (wrong user name or password?)", host_, r.status, r.header("content-type"), r.body);
  expect_status(r, {200, 404}, c.what, host_);
}

}  // namespace cbuild::registry
