// ImageConfig — the OCI image configuration (image-spec config.md) with the Docker-format
// fields of the container config (Healthcheck, OnBuild, Shell, ArgsEscaped, …), as plain structs
// with JSON in and out.
//
// parse() validates types and required fields (architecture, os, rootfs with type "layers" and
// sha256 diff_ids) and throws Error{InvalidArgument} naming the document and the field. Fields
// it does not know are kept as raw JSON text in `extra` and written back by to_json(), but
// configs that came from elsewhere are never re-serialized: the store keeps their bytes.
// to_json() validates what the OCI schema and upstream's validator check (Env as NAME=value).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"

namespace cbuild::oci {

struct Healthcheck {
  std::vector<std::string> test;  // ["NONE"], ["CMD", …], ["CMD-SHELL", "…"]; empty = inherit
  std::int64_t interval_ns = 0;
  std::int64_t timeout_ns = 0;
  std::int64_t start_period_ns = 0;
  std::int64_t start_interval_ns = 0;
  int retries = 0;
  friend bool operator==(const Healthcheck&, const Healthcheck&) = default;
};

struct ContainerConfig {
  std::string user;
  std::set<std::string> exposed_ports;  // "80/tcp"
  std::vector<std::string> env;         // "NAME=value"
  std::optional<std::vector<std::string>> entrypoint;  // nullopt: unset (null)
  std::optional<std::vector<std::string>> cmd;
  std::set<std::string> volumes;
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::optional<bool> args_escaped;
  std::optional<Healthcheck> healthcheck;
  std::vector<std::string> on_build;
  std::vector<std::string> shell;
  std::map<std::string, std::string> extra;  // unknown keys → raw JSON text

  // The value of NAME in env, if set.
  std::optional<std::string> getenv(std::string_view name) const;
  // Sets or replaces NAME=value, keeping the order of the others.
  void setenv(std::string_view name, std::string_view value);
  friend bool operator==(const ContainerConfig&, const ContainerConfig&) = default;
};

struct RootFS {
  std::string type = "layers";
  std::vector<Digest> diff_ids;
  friend bool operator==(const RootFS&, const RootFS&) = default;
};

struct History {
  std::string created;  // RFC 3339; empty = absent
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
  friend bool operator==(const History&, const History&) = default;
};

struct ImageConfig {
  std::string created;  // RFC 3339; empty = absent
  std::string author;
  std::string architecture;
  std::string os;
  std::string os_version;
  std::vector<std::string> os_features;
  std::string variant;
  ContainerConfig config;
  bool has_config = true;  // false when the document had no "config" object
  RootFS rootfs;
  std::vector<History> history;
  std::map<std::string, std::string> extra;  // unknown top-level keys → raw JSON text

  static ImageConfig parse(std::string_view bytes, std::string_view what = "image config");
  std::string to_json() const;
  // The number of history entries that made a layer (those without empty_layer).
  std::size_t non_empty_history() const;
  friend bool operator==(const ImageConfig&, const ImageConfig&) = default;
};

// "2024-01-02T03:04:05Z" for a Unix time (seconds), as configs and history carry it.
std::string rfc3339_utc(std::int64_t unix_seconds);
// Parses an RFC 3339 time into Unix seconds (fraction dropped, offsets applied); nullopt if
// malformed.
std::optional<std::int64_t> parse_rfc3339(std::string_view s);

}  // namespace cbuild::oci
