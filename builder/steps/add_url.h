// ADD of a remote file: `ADD https://example.com/tool-1.2.tar.gz /opt/` fetches the URL at
// build time, as BuildKit's HTTP source does, and copies the one file it yields:
//
//  - The file is named after the last element of the URL's path (percent-decoded; query and
//    fragment ignored), or "__unnamed__" when the path has none ("https://host/").
//  - It is written with mode 0600 and, when the reply carries Last-Modified, that mtime (else
//    the Unix epoch). It is never extracted, whatever its name or content.
//  - A 2xx reply is the content; redirects (3xx with Location) are followed, up to 10;
//    anything else fails with the status. Connection errors, 408, 429 and 5xx are retried
//    (3 attempts in all) before failing. Every transfer has a connect and a stall timeout and
//    stops on Ctrl-C (registry-client's CurlHttp).
//  - With an expected digest (`ADD --checksum=sha256:…`) the content must hash to it, or the
//    fetch fails with DataLoss naming both digests.
//
// Which words are URLs and which are Git sources (rejected: cbuild does not clone
// repositories) is plan/source_kind.h's to say.
//
// Free functions; fetch_url() is thread-safe when the HttpClient is (CurlHttp is).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "registry-client/http.h"

namespace cbuild::builder {

// The file name ADD gives what `url` returns (see above).
std::string url_file_name(std::string_view url);
// `url` with the password of its user info replaced by "xxxxx", for messages (BuildKit's
// urlutil.RedactCredentials).
std::string redact_url(std::string_view url);

// An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, RFC 850 or asctime form) as unix seconds, or
// nullopt when the text is none of them.
std::optional<std::int64_t> parse_http_date(std::string_view text);

struct UrlFetchOptions {
  bool tls_verify = true;                 // false: --tls-verify=false accepts any certificate
  std::optional<oci::Digest> expected;    // --checksum
  int max_attempts = 3;
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;              // fewer than 1 byte/s for this long aborts
};

struct FetchedUrl {
  oci::Digest digest;                     // sha256 of the content
  std::uint64_t size = 0;
  std::optional<std::int64_t> last_modified;  // from the reply, unix seconds
};

// GETs `url` into `file` (created or truncated, mode 0600, mtime set as above) and returns
// what it holds. On failure `file` is removed and Error is thrown naming the URL (a password
// in it shown as "xxxxx"): NotFound for 404/410, Unauthenticated for 401, PermissionDenied for
// 403, Unavailable for other statuses and unreachable hosts, Timeout, DataLoss for a checksum
// mismatch, Cancelled on Ctrl-C.
FetchedUrl fetch_url(registry::HttpClient& http, const std::string& url, const std::filesystem::path& file,
                     const UrlFetchOptions& options = {});

}  // namespace cbuild::builder
