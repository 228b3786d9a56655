#include "registry-client/registry_error.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace cbuild::registry {

RegistryError::RegistryError(ErrorKind kind, std::string message, int http_status,
                             std::vector<std::string> codes, bool temporary)
    : Error(kind, std::move(message)), status_(http_status), codes_(std::move(codes)), temporary_(temporary) {}

bool RegistryError::has_code(std::string_view code) const {
  return std::find(codes_.begin(), codes_.end(), code) != codes_.end();
}

bool is_temporary_status(int status) noexcept { return status == 408 || status == 429 || status >= 500; }

namespace {

ErrorKind kind_for(int status, const std::vector<std::string>& codes) {
  auto has = [&](std::string_view c) { return std::find(codes.begin(), codes.end(), c) != codes.end(); };
  if (status == 401 || has("UNAUTHORIZED")) return ErrorKind::Unauthenticated;
  if (status == 403 || has("DENIED")) return ErrorKind::PermissionDenied;
  if (status == 404 || has("MANIFEST_UNKNOWN") || has("BLOB_UNKNOWN") || has("NAME_UNKNOWN"))
    return ErrorKind::NotFound;
  if (status == 408) return ErrorKind::Timeout;
  if (status == 429 || has("TOOMANYREQUESTS")) return ErrorKind::ResourceExhausted;
  if (status >= 500) return ErrorKind::Unavailable;
  if (has("DIGEST_INVALID") || has("SIZE_INVALID")) return ErrorKind::DataLoss;
  return ErrorKind::InvalidArgument;
}

// Keeps messages one line and short: registries sometimes echo large details.
std::string one_line(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) { out += "…"; break; }
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

RegistryError error_from_reply(std::string_view operation, std::string_view registry, int status,
                               std::string_view content_type, std::string_view body) {
  std::vector<std::string> codes;
  std::string detail;
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    for (const auto& e : j["errors"]) {
      if (!e.is_object()) continue;
      std::string code = e.value("code", std::string{});
      std::string msg = e.value("message", std::string{});
      if (!code.empty()) codes.push_back(code);
      if (!detail.empty()) detail += "; ";
      detail += code.empty() ? msg : (msg.empty() ? code : code + ": " + msg);
    }
  } else if (content_type.find("html") != std::string_view::npos ||
             body.substr(0, 64).find("<") != std::string_view::npos) {
    detail = "unexpected HTML reply (not a registry API answer)";
  } else if (!body.empty()) {
    detail = one_line(body, 120);
  }
  // A body-less reply (HEAD, some proxies) still names the code its status stands for.
  if (codes.empty()) {
    const char* implied = status == 401 ? "UNAUTHORIZED" : status == 403 ? "DENIED" : status == 429 ? "TOOMANYREQUESTS" : nullptr;
    if (implied) {
      codes.emplace_back(implied);
      if (detail.empty()) detail = implied;
    }
  }
  std::string msg = std::string(operation) + ": " + std::string(registry) + " answered HTTP " +
                    std::to_string(status);
  if (!detail.empty()) msg += " " + one_line(detail);
  return RegistryError(kind_for(status, codes), std::move(msg), status, std::move(codes),
                       is_temporary_status(status));
}

}  // namespace cbuild::registry
