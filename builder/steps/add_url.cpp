#include "builder/steps/add_url.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "builder/plan/source_kind.h"
#include "registry-client/transport.h"

namespace cbuild::builder {

namespace {

constexpr int kMaxRedirects = 10;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Sleeps up to `d`, returning early (by throwing) on Ctrl-C.
void sleep_cancellable(std::chrono::milliseconds d) {
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    check_cancelled();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  check_cancelled();
}

// " (Not Found)" for the statuses a file server commonly answers (curl keeps no reason phrase).
std::string status_text(int s) {
  switch (s) {
    case 400: return " (Bad Request)";
    case 401: return " (Unauthorized)";
    case 403: return " (Forbidden)";
    case 404: return " (Not Found)";
    case 410: return " (Gone)";
    case 429: return " (Too Many Requests)";
    case 500: return " (Internal Server Error)";
    case 502: return " (Bad Gateway)";
    case 503: return " (Service Unavailable)";
    case 504: return " (Gateway Timeout)";
    default: return "";
  }
}

bool retryable_status(int s) { return s == 408 || s == 429 || s >= 500; }

ErrorKind kind_of_status(int s) {
  if (s == 404 || s == 410) return ErrorKind::NotFound;
  if (s == 401) return ErrorKind::Unauthenticated;
  if (s == 403) return ErrorKind::PermissionDenied;
  return ErrorKind::Unavailable;
}

// The file being fetched: a sink that can start over (a retry after a cut body), hashing what
// it writes. Removes the file unless keep() was called.
class DownloadFile {
 public:
  explicit DownloadFile(std::filesystem::path p) : path_(std::move(p)) {}
  ~DownloadFile() {
    if (!kept_) ::unlink(path_.c_str());
  }
  DownloadFile(const DownloadFile&) = delete;
  DownloadFile& operator=(const DownloadFile&) = delete;

  oci::HashingSink& restart() {
    hash_.reset();
    file_.reset();
    file_ = std::make_unique<oci::FileSink>(path_, 0600);
    hash_ = std::make_unique<oci::HashingSink>(file_.get());
    return *hash_;
  }
  oci::HashingSink& sink() { return *hash_; }
  void keep() { kept_ = true; }

 private:
  std::filesystem::path path_;
  std::unique_ptr<oci::FileSink> file_;
  std::unique_ptr<oci::HashingSink> hash_;
  bool kept_ = false;
};

}  // namespace

std::string url_file_name(std::string_view url) {
  // Go's url.Parse decodes the path before BuildKit takes path.Base of it.
  std::string path = percent_decode(url_path(url));
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") return "__unnamed__";
  return base;
}

std::string redact_url(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  std::size_t start = scheme + 3;
  auto end = url.find_first_of("/?#", start);
  std::string_view authority = url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  auto colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, start + colon + 1)) + "xxxxx" + std::string(url.substr(start + at));
}

std::optional<std::int64_t> parse_http_date(std::string_view text) {
  std::string s(text);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  // IMF-fixdate, the obsolete RFC 850 form, and C's asctime form (what Go's http.ParseTime takes).
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = ::strptime(s.c_str(), fmt, &tm);
    if (end && *end == '\0') return static_cast<std::int64_t>(::timegm(&tm));
  }
  return std::nullopt;
}

FetchedUrl fetch_url(registry::HttpClient& http, const std::string& url, const std::filesystem::path& file,
                     const UrlFetchOptions& options) {
  const std::string shown = quote(redact_url(url));
  DownloadFile download(file);
  std::string current = url;
  int redirects = 0;
  int attempt = 0;
  registry::HttpResponse resp;
  while (true) {
    check_cancelled();
    registry::HttpRequest req;
    req.method = "GET";
    req.url = current;
    req.response_sink = &download.restart();
    req.tls.verify = options.tls_verify;
    req.connect_timeout_s = options.connect_timeout_s;
    req.stall_timeout_s = options.stall_timeout_s;
    try {
      resp = http.send(req);
    } catch (const registry::ConnectionError& e) {
      if (++attempt < options.max_attempts) {
        sleep_cancellable(std::chrono::milliseconds(250 << attempt));
        continue;
      }
      // CurlHttp says "GET URL: why"; the URL is named once, in front.
      std::string why = e.what();
      if (auto p = "GET " + current + ": "; starts_with(why, p)) why = why.substr(p.size());
      throw Error(e.kind(), "cannot fetch " + shown + ": " + redact_url(why));
    }
    if (resp.status >= 300 && resp.status < 400 && resp.status != 304) {
      std::string location = resp.header("location");
      if (location.empty())
        throw Error(ErrorKind::Unavailable, "cannot fetch " + shown + ": HTTP status " + std::to_string(resp.status) +
                                                " without a Location");
      if (++redirects > kMaxRedirects)
        throw Error(ErrorKind::Unavailable, "cannot fetch " + shown + ": more than " + std::to_string(kMaxRedirects) +
                                                " redirects");
      current = registry::resolve_url(current, location);
      continue;
    }
    if (resp.status >= 200 && resp.status < 300) break;
    if (retryable_status(resp.status) && ++attempt < options.max_attempts) {
      sleep_cancellable(std::chrono::milliseconds(250 << attempt));
      continue;
    }
    std::string msg = "cannot fetch " + shown + ": HTTP status " + std::to_string(resp.status) + status_text(resp.status);
    if (current != url) msg += " from " + quote(redact_url(current));
    throw Error(kind_of_status(resp.status), msg);
  }
  oci::HashingSink& sink = download.sink();
  sink.finish();
  FetchedUrl out{.digest = sink.digest(), .size = sink.bytes(), .last_modified = {}};
  if (options.expected && *options.expected != out.digest)
    throw Error(ErrorKind::DataLoss, "checksum mismatch for " + shown + ": got " + out.digest.str() + ", expected " +
                                         options.expected->str());
  if (std::string lm = resp.header("last-modified"); !lm.empty()) out.last_modified = parse_http_date(lm);
  // BuildKit's HTTP source stamps the file with Last-Modified, else with the Unix epoch.
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(out.last_modified.value_or(0));
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  if (::utimensat(AT_FDCWD, file.c_str(), ts, 0) != 0) throw_errno("set times", file.string());
  download.keep();
  return out;
}

}  // namespace cbuild::builder
