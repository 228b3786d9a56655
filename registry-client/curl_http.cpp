#include "registry-client/curl_http.h"


#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>

#include "oci/base/cancel.h"
#include "oci/base/fs.h"
#include "registry-client/internal/curl_api.h"

namespace cbuild::registry {

namespace {

constexpr std::size_t kMaxErrorBody = 1u << 20;

struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl::api().easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl::api().slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

void global_init_once() {
  static const bool done = [] { return curl::api().global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  if (!done) throw Error(ErrorKind::Internal, "curl_global_init failed");
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

// Per-transfer state the callbacks see.
struct Transfer {
  const HttpRequest* req;
  HttpResponse* resp;
  std::exception_ptr error;
  std::int64_t sent = 0;
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line (after 100 Continue, for example) starts a fresh header set.
    t->resp->headers.clear();
    auto sp = line.find(' ');
    if (sp != std::string_view::npos) t->resp->status = std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    t->resp->headers.emplace_back(lower(line.substr(0, colon)), std::string(v));
  }
  return size * n;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t len = size * n;
  try {
    const int st = t->resp->status;
    if (t->req->response_sink && st >= 200 && st < 300) {
      t->req->response_sink->write(data, len);
    } else if (t->resp->body.size() < kMaxErrorBody || (st >= 200 && st < 300)) {
      t->resp->body.append(data, len);
    }
    t->resp->body_bytes += len;
  } catch (...) {
    t->error = std::current_exception();
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  return len;
}

std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  try {
    std::size_t want = size * n;
    if (t->req->body_size < 0) {  // until the source ends
      std::size_t got = t->req->body_source->read(buf, want);
      t->sent += static_cast<std::int64_t>(got);
      return got;
    }
    const std::int64_t left = t->req->body_size - t->sent;
    if (left <= 0) return 0;
    want = std::min<std::size_t>(want, static_cast<std::size_t>(left));
    std::size_t got = t->req->body_source->read(buf, want);
    if (got == 0)
      throw Error(ErrorKind::DataLoss, "request body ended after " + std::to_string(t->sent) + " of " +
                                           std::to_string(t->req->body_size) + " bytes");
    t->sent += static_cast<std::int64_t>(got);
    return got;
  } catch (...) {
    t->error = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<const Transfer*>(user);
  return cancel_requested() || (t->req->abort && t->req->abort->load()) ? 1 : 0;
}

bool is_tls_failure(CURLcode rc) {
  switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_RECV_ERROR:  // a plain-HTTP server closing on a ClientHello surfaces here too
      return true;
    default:
      return false;
  }
}

// System CA bundle plus the per-registry CA files, as one PEM blob for CURLOPT_CAINFO_BLOB.
std::string ca_bundle_with(const std::vector<std::string>& extra) {
  std::string pem;
  for (const char* sys : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
    if (auto s = read_file_if_exists(sys)) { pem = std::move(*s); break; }
  }
  for (const auto& f : extra) {
    if (!pem.empty() && pem.back() != '\n') pem += '\n';
    pem += read_file(f);
  }
  return pem;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  const std::string n = lower(name);
  for (const auto& [k, v] : headers)
    if (k == n) return v;
  return {};
}

std::vector<std::string> HttpResponse::header_all(std::string_view name) const {
  const std::string n = lower(name);
  std::vector<std::string> out;
  for (const auto& [k, v] : headers)
    if (k == n) out.push_back(v);
  return out;
}

struct CurlHttp::Handle {
  std::unique_ptr<CURL, CurlDeleter> curl;
};

CurlHttp::CurlHttp() { global_init_once(); }
CurlHttp::~CurlHttp() = default;

std::unique_ptr<CurlHttp::Handle> CurlHttp::acquire() {
  {
    std::lock_guard lk(mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      curl::api().easy_reset(h->curl.get());  // keeps the connection cache
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->curl.reset(curl::api().easy_init());
  if (!h->curl) throw Error(ErrorKind::Internal, "curl_easy_init failed");
  return h;
}

void CurlHttp::release(std::unique_ptr<Handle> h) {
  std::lock_guard lk(mu_);
  if (idle_.size() < 16) idle_.push_back(std::move(h));
}

HttpResponse CurlHttp::send(const HttpRequest& req) {
  check_cancelled();
  auto h = acquire();
  CURL* c = h->curl.get();
  HttpResponse resp;
  Transfer t{&req, &resp, nullptr, 0};

  SlistPtr hdrs;
  auto add_header = [&](const std::string& line) {
    curl_slist* n = curl::api().slist_append(hdrs.get(), line.c_str());
    if (!n) throw Error(ErrorKind::ResourceExhausted, "curl_slist_append failed");
    // The old head is now part of n's list, which frees it: hand it over, do not free it.
    hdrs.release();
    hdrs.reset(n);
  };
  for (const auto& [k, v] : req.headers) add_header(k + ": " + v);
  add_header("Expect:");  // no 100-continue round trip for uploads

  curl::api().easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl::api().easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl::api().easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl::api().easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl::api().easy_setopt(c, CURLOPT_USERAGENT, "cbuild/" CBUILD_VERSION);
  curl::api().easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req.connect_timeout_s);
  if (req.stall_timeout_s > 0) {
    curl::api().easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl::api().easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req.stall_timeout_s);
  }
  if (req.total_timeout_s > 0) curl::api().easy_setopt(c, CURLOPT_TIMEOUT, req.total_timeout_s);
  curl::api().easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl::api().easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl::api().easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl::api().easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl::api().easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl::api().easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl::api().easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl::api().easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl::api().easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);

  if (!req.tls.verify) {
    curl::api().easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl::api().easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  std::string ca_blob;
  if (!req.tls.extra_ca_files.empty()) {
    ca_blob = ca_bundle_with(req.tls.extra_ca_files);
    curl_blob b{ca_blob.data(), ca_blob.size(), CURL_BLOB_NOCOPY};
    curl::api().easy_setopt(c, CURLOPT_CAINFO_BLOB, &b);  // copied? no: NOCOPY, ca_blob outlives perform
  }
  if (!req.tls.client_cert.empty()) curl::api().easy_setopt(c, CURLOPT_SSLCERT, req.tls.client_cert.c_str());
  if (!req.tls.client_key.empty()) curl::api().easy_setopt(c, CURLOPT_SSLKEY, req.tls.client_key.c_str());

  const bool has_body = req.body_source != nullptr || !req.body.empty();
  if (req.method == "HEAD") {
    curl::api().easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "GET") {
    curl::api().easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (req.body_source) {
    curl::api().easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl::api().easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl::api().easy_setopt(c, CURLOPT_READDATA, &t);
    // -1 (unknown) makes curl send the body chunked.
    curl::api().easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body_size < 0 ? -1 : req.body_size));
    curl::api().easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else {
    curl::api().easy_setopt(c, CURLOPT_POST, 1L);
    curl::api().easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl::api().easy_setopt(c, CURLOPT_POSTFIELDS, has_body ? req.body.data() : "");
    if (req.method != "POST") curl::api().easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    if (!has_body) add_header("Content-Type:");  // no form type on empty POST/PUT/PATCH
  }
  curl::api().easy_setopt(c, CURLOPT_HTTPHEADER, hdrs.get());

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl::api().easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  const CURLcode rc = curl::api().easy_perform(c);
  curl::api().easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl::api().easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  if (rc == CURLE_OK) {
    long code = 0;
    curl::api().easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    resp.status = static_cast<int>(code);
    release(std::move(h));
    return resp;
  }
  // The handle may hold a broken connection; drop it rather than pooling it.
  if (t.error) std::rethrow_exception(t.error);
  if (rc == CURLE_ABORTED_BY_CALLBACK || cancel_requested())
    throw Error(ErrorKind::Cancelled, (cancel_requested() ? "interrupted: " : "abandoned: ") + req.method + " " + req.url);
  std::string why = errbuf[0] ? errbuf : curl::api().easy_strerror(rc);
  const bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
  throw ConnectionError(timeout ? ErrorKind::Timeout : ErrorKind::Unavailable,
                        req.method + " " + req.url + ": " + why, is_tls_failure(rc), resp.body_bytes > 0);
}

}  // namespace cbuild::registry
