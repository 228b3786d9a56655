#include "registry-client/reference.h"

#include <regex>

#include "oci/base/error.h"

namespace cbuild::registry {
namespace {

constexpr std::size_t kNameTotalLengthMax = 255;
constexpr std::string_view kLegacyHub = "index.docker.io";

[[noreturn]] void bad(std::string_view ref, std::string_view rule) {
  throw Error(ErrorKind::InvalidArgument, "invalid reference " + quote(ref) + ": " + std::string(rule));
}

// Patterns of distribution/reference (regexp.go), written out for std::regex.
const std::regex& path_component_re() {
  static const std::regex re("[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*");
  return re;
}
const std::regex& domain_re() {
  static const std::regex re(
      "(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
      "|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?");
  return re;
}
const std::regex& tag_re() {
  static const std::regex re("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  return re;
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool has_upper(std::string_view s) {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return true;
  return false;
}

}  // namespace

Reference Reference::parse(std::string_view s) {
  if (s.empty()) bad(s, "reference is empty");
  // Bound the input before any regex runs (std::regex recursion grows with input length).
  if (s.size() > 1024) bad(s.substr(0, 64), "reference is longer than 1024 characters");
  Reference r;
  std::string_view name = s;
  if (auto at = s.find('@'); at != std::string_view::npos) {
    std::string_view dig = s.substr(at + 1);
    name = s.substr(0, at);
    auto d = oci::Digest::try_parse(dig);
    if (!d) bad(s, "digest " + quote(dig) + " is not algorithm:hex (e.g. sha256 and 64 lowercase hex digits)");
    r.digest_ = *d;
  }
  auto colon = name.rfind(':');
  auto slash = name.rfind('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = name.substr(colon + 1);
    if (!std::regex_match(tag.begin(), tag.end(), tag_re()))
      bad(s, "tag " + quote(tag) + " must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    r.tag_ = std::string(tag);
    name = name.substr(0, colon);
  }
  if (name.empty()) bad(s, "repository name is empty");
  if (is_hex64(name)) bad(s, "cannot specify 64-byte hexadecimal strings as a repository name");

  // docker's splitDockerDomain: the first component is a registry host only when it looks like
  // one (has a dot or a port, is "localhost", or has uppercase letters, which paths never do).
  std::string_view domain;
  std::string_view path = name;
  if (auto first = name.find('/'); first != std::string_view::npos) {
    std::string_view head = name.substr(0, first);
    if (head.find_first_of(".:") != std::string_view::npos || head == "localhost" || has_upper(head)) {
      domain = head;
      path = name.substr(first + 1);
    }
  }
  if (!domain.empty() && !std::regex_match(domain.begin(), domain.end(), domain_re()))
    bad(s, "registry host " + quote(domain) + " is not a valid host[:port]");
  if (has_upper(path)) bad(s, "repository name " + quote(path) + " must be lowercase");
  if (path.empty()) bad(s, "repository name is empty");
  std::size_t start = 0;
  for (;;) {
    auto end = path.find('/', start);
    std::string_view comp = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!std::regex_match(comp.begin(), comp.end(), path_component_re()))
      bad(s, "repository path component " + quote(comp) +
                 " must be lowercase letters and digits separated by '.', '_', '__' or '-'");
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (domain.size() + 1 + path.size() > kNameTotalLengthMax && !domain.empty())
    bad(s, "repository name must not be more than 255 characters");
  if (domain.empty() && path.size() > kNameTotalLengthMax)
    bad(s, "repository name must not be more than 255 characters");

  r.registry_ = domain.empty() || domain == kLegacyHub ? std::string(kDockerHub) : std::string(domain);
  r.repository_ = std::string(path);
  if (r.registry_ == kDockerHub && r.repository_.find('/') == std::string::npos)
    r.repository_ = "library/" + r.repository_;
  if (r.registry_.size() + 1 + r.repository_.size() > kNameTotalLengthMax)
    bad(s, "repository name must not be more than 255 characters");
  if (r.tag_.empty() && !r.digest_) r.tag_ = "latest";
  return r;
}

std::optional<Reference> Reference::try_parse(std::string_view s) {
  try {
    return parse(s);
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::string Reference::name() const { return registry_ + "/" + repository_; }

std::string Reference::str() const {
  std::string out = name();
  if (!tag_.empty()) out += ":" + tag_;
  if (digest_) out += "@" + digest_->str();
  return out;
}

std::string Reference::familiar_name() const {
  if (registry_ != kDockerHub) return name();
  std::string_view repo = repository_;
  constexpr std::string_view lib = "library/";
  // "library/x" becomes "x", but "library/x/y" keeps its prefix (docker does the same).
  if (repo.starts_with(lib) && repo.substr(lib.size()).find('/') == std::string_view::npos)
    repo.remove_prefix(lib.size());
  return std::string(repo);
}

std::string Reference::familiar() const {
  std::string out = familiar_name();
  if (!tag_.empty()) out += ":" + tag_;
  if (digest_) out += "@" + digest_->str();
  return out;
}

std::string Reference::api_host() const {
  return registry_ == kDockerHub ? std::string("registry-1.docker.io") : registry_;
}

std::string Reference::credential_key() const {
  return registry_ == kDockerHub ? std::string("https://index.docker.io/v1/") : registry_;
}

Reference Reference::with_tag(std::string_view tag) const {
  if (!std::regex_match(tag.begin(), tag.end(), tag_re()))
    bad(name() + ":" + std::string(tag), "tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  Reference r = *this;
  r.tag_ = std::string(tag);
  r.digest_.reset();
  return r;
}

Reference Reference::with_digest(const oci::Digest& digest) const {
  Reference r = *this;
  r.digest_ = digest;
  return r;
}

}  // namespace cbuild::registry
