// Credentials — where registry logins come from and where `cbuild login` puts them.
//
// Lookup order for a registry key (Reference::credential_key(): "quay.io", "localhost:5000",
// or "https://index.docker.io/v1/" for docker.io):
//   1. ${XDG_RUNTIME_DIR}/containers/auth.json (or $REGISTRY_AUTH_FILE)  "auths"
//   2. the docker config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json):
//      credHelpers[key] → `docker-credential-NAME get`, else "auths"[key], else credsStore.
// Keys in "auths" may be written with a scheme or a /v1/ or /v2/ suffix; all spellings match.
// A missing or empty file means anonymous. A file that is not JSON throws InvalidArgument
// naming the file. A helper that fails throws Unauthenticated naming the helper.
// Thread-safe (no shared state); files are read on each call.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace cbuild::registry {

struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token (docker's "identitytoken")

  bool empty() const { return username.empty() && password.empty() && identity_token.empty(); }
};

class CredentialStore {
 public:
  // Paths default from the environment as described above; tests pass their own.
  struct Paths {
    std::filesystem::path docker_config;  // the config.json file
    std::filesystem::path auth_json;      // containers auth.json (may not exist)
  };
  static Paths default_paths();

  explicit CredentialStore(Paths paths = default_paths());

  std::optional<Credentials> lookup(std::string_view key) const;

  // Writes credentials to the docker config (credHelpers/credsStore helper `store` when one
  // is configured for the key, else base64 "auth" in "auths"), keeping every other field.
  // The file is replaced atomically with mode 0600.
  void store(std::string_view key, const Credentials& creds) const;
  // Removes the key from auths (and calls the helper's `erase`). Returns false if nothing
  // was stored for it.
  bool erase(std::string_view key) const;

  const Paths& paths() const { return paths_; }

 private:
  Paths paths_;
};

// Base64 helpers used for "auth" fields and Basic authorization.
std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace cbuild::registry
