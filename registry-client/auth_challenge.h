// WWW-Authenticate parsing (RFC 7235 challenges as registries send them):
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull"
//   Basic realm="Registry Realm"
// Several challenges may share one header ("Basic realm=x, Bearer realm=y"); each header line
// is parsed. Pure functions; thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cbuild::registry {

struct AuthChallenge {
  std::string scheme;                         // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lowercased, values unquoted

  std::string param(std::string_view key) const;
};

// Parses one header value into its challenges. Malformed parts are skipped, never thrown.
std::vector<AuthChallenge> parse_www_authenticate(std::string_view header);

// The challenge the client should answer: Bearer over Basic; nullopt if neither is offered.
std::optional<AuthChallenge> pick_challenge(const std::vector<std::string>& header_values);

}  // namespace cbuild::registry
