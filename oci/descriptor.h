// Descriptor and Platform — the OCI content descriptor (image-spec descriptor.md) as a plain
// struct, with JSON in and out. from_json() validates: a missing or malformed field throws
// Error{InvalidArgument} naming `what` (the document) and the field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "oci/digest.h"

namespace cbuild::oci {

struct Platform {
  std::string architecture;  // GOARCH spelling: amd64, arm64, …
  std::string os;            // linux
  std::string os_version;
  std::vector<std::string> os_features;
  std::string variant;  // v7, v8, …

  // "os/arch[/variant]"
  std::string str() const;
  // Parses "os/arch[/variant]" (also "arch" alone, with os linux), each part letters, digits,
  // '_' or '-'. Throws InvalidArgument.
  static Platform parse(std::string_view s);
  // The platform of this machine (linux/amd64, …).
  static Platform host();
  // Whether an index entry's (or a config's) platform `have` satisfies this wanted one, as
  // containerd's default matcher: os and architecture equal, and the variant when this one
  // names one (arm64's v8 also matches an entry without variant). No `have` never matches.
  bool matches(const std::optional<Platform>& have) const;
  friend bool operator==(const Platform&, const Platform&) = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  std::int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;
  std::string artifact_type;
  std::optional<std::string> data;  // base64, as in the document

  friend bool operator==(const Descriptor&, const Descriptor&) = default;
};

nlohmann::json to_json(const Platform& p);
Platform platform_from_json(const nlohmann::json& j, std::string_view what);
nlohmann::json to_json(const Descriptor& d);
Descriptor descriptor_from_json(const nlohmann::json& j, std::string_view what);

}  // namespace cbuild::oci
