#include "oci/descriptor.h"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"

namespace cbuild::oci {
using json = nlohmann::json;

namespace {
[[noreturn]] void bad(std::string_view what, std::string_view field, std::string_view why) {
  throw Error(ErrorKind::InvalidArgument,
              std::string(what) + ": field " + quote(field) + " " + std::string(why));
}
const json& need(const json& j, const char* key, std::string_view what) {
  auto it = j.find(key);
  if (it == j.end()) bad(what, key, "is missing");
  return *it;
}
std::string need_string(const json& j, const char* key, std::string_view what) {
  const json& v = need(j, key, what);
  if (!v.is_string()) bad(what, key, "must be a string");
  return v.get<std::string>();
}
std::string opt_string(const json& j, const char* key, std::string_view what) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  if (!it->is_string()) bad(what, key, "must be a string");
  return it->get<std::string>();
}
}  // namespace

std::string Platform::str() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

Platform Platform::parse(std::string_view s) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    auto slash = s.find('/', start);
    parts.emplace_back(s.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  Platform p;
  // Each part is a word of letters, digits, '_' and '-', as containerd's platforms.Parse
  // requires: "linux/amd64,linux/arm64" is a list, not an architecture "amd64,linux".
  for (auto& part : parts)
    if (part.empty() || part.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                            std::string::npos)
      throw Error(ErrorKind::InvalidArgument, "invalid platform " + quote(s) + ": expected os/arch[/variant]");
  if (parts.size() == 1) {
    p.os = "linux";
    p.architecture = parts[0];
  } else if (parts.size() <= 3) {
    p.os = parts[0];
    p.architecture = parts[1];
    if (parts.size() == 3) p.variant = parts[2];
  } else {
    throw Error(ErrorKind::InvalidArgument, "invalid platform " + quote(s) + ": expected os/arch[/variant]");
  }
  for (auto& c : p.os) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : p.architecture) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Normalise the common aliases the way containerd's platforms package does.
  if (p.architecture == "x86_64" || p.architecture == "x86-64") p.architecture = "amd64";
  if (p.architecture == "aarch64") p.architecture = "arm64";
  if (p.architecture == "arm64" && p.variant == "v8") p.variant.clear();
  return p;
}

bool Platform::matches(const std::optional<Platform>& have) const {
  if (!have) return false;
  if (have->os != os || have->architecture != architecture) return false;
  if (variant.empty() || have->variant == variant) return true;
  return architecture == "arm64" && variant == "v8" && have->variant.empty();
}

Platform Platform::host() {
  Platform p;
  p.os = "linux";
  struct utsname u {};
  ::uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") p.architecture = "amd64";
  else if (m == "aarch64") p.architecture = "arm64";
  else if (m == "armv7l") { p.architecture = "arm"; p.variant = "v7"; }
  else if (m == "i686" || m == "i386") p.architecture = "386";
  else p.architecture = m;
  return p;
}

json to_json(const Platform& p) {
  json j = {{"architecture", p.architecture}, {"os", p.os}};
  if (!p.os_version.empty()) j["os.version"] = p.os_version;
  if (!p.os_features.empty()) j["os.features"] = p.os_features;
  if (!p.variant.empty()) j["variant"] = p.variant;
  return j;
}

Platform platform_from_json(const json& j, std::string_view what) {
  if (!j.is_object()) bad(what, "platform", "must be an object");
  Platform p;
  p.architecture = need_string(j, "architecture", what);
  p.os = need_string(j, "os", what);
  p.os_version = opt_string(j, "os.version", what);
  p.variant = opt_string(j, "variant", what);
  if (auto it = j.find("os.features"); it != j.end()) {
    if (!it->is_array()) bad(what, "os.features", "must be an array of strings");
    for (auto& f : *it) {
      if (!f.is_string()) bad(what, "os.features", "must be an array of strings");
      p.os_features.push_back(f.get<std::string>());
    }
  }
  return p;
}

json to_json(const Descriptor& d) {
  json j = {{"mediaType", d.media_type}, {"digest", d.digest.str()}, {"size", d.size}};
  if (!d.urls.empty()) j["urls"] = d.urls;
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  if (d.platform) j["platform"] = to_json(*d.platform);
  if (!d.artifact_type.empty()) j["artifactType"] = d.artifact_type;
  if (d.data) j["data"] = *d.data;
  return j;
}

Descriptor descriptor_from_json(const json& j, std::string_view what) {
  if (!j.is_object()) bad(what, "descriptor", "must be an object");
  Descriptor d;
  d.media_type = need_string(j, "mediaType", what);
  d.digest = Digest::parse(need_string(j, "digest", what), std::string(what) + " digest");
  const json& size = need(j, "size", what);
  if (!size.is_number_integer() || size.get<std::int64_t>() < 0) bad(what, "size", "must be a non-negative integer");
  d.size = size.get<std::int64_t>();
  if (auto it = j.find("urls"); it != j.end()) {
    if (!it->is_array()) bad(what, "urls", "must be an array of strings");
    for (auto& u : *it) {
      if (!u.is_string()) bad(what, "urls", "must be an array of strings");
      d.urls.push_back(u.get<std::string>());
    }
  }
  if (auto it = j.find("annotations"); it != j.end()) {
    if (!it->is_object()) bad(what, "annotations", "must be an object of strings");
    for (auto& [k, v] : it->items()) {
      if (!v.is_string()) bad(what, "annotations." + k, "must be a string");
      d.annotations[k] = v.get<std::string>();
    }
  }
  if (auto it = j.find("platform"); it != j.end()) d.platform = platform_from_json(*it, what);
  d.artifact_type = opt_string(j, "artifactType", what);
  if (auto it = j.find("data"); it != j.end()) {
    if (!it->is_string()) bad(what, "data", "must be a base64 string");
    d.data = it->get<std::string>();
  }
  return d;
}

}  // namespace cbuild::oci
