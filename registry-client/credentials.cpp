#include "registry-client/credentials.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/unique_fd.h"

namespace cbuild::registry {

namespace {

using nlohmann::json;

// "https://index.docker.io/v1/" and "index.docker.io" name the same entry; so do
// "http://localhost:5000" and "localhost:5000".
std::string strip_key(std::string_view k) {
  if (k.rfind("https://", 0) == 0) k.remove_prefix(8);
  else if (k.rfind("http://", 0) == 0) k.remove_prefix(7);
  auto slash = k.find('/');
  if (slash != std::string_view::npos) k = k.substr(0, slash);
  return std::string(k);
}

std::optional<json> load_json(const std::filesystem::path& p) {
  auto text = read_file_if_exists(p, 16u << 20);
  if (!text || text->find_first_not_of(" \t\r\n") == std::string::npos) return std::nullopt;
  auto j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error(ErrorKind::InvalidArgument, "read credentials " + quote(p.string()) + ": not a JSON object");
  return j;
}

std::optional<Credentials> from_auths(const json& root, std::string_view key) {
  if (!root.contains("auths") || !root["auths"].is_object()) return std::nullopt;
  const std::string want = strip_key(key);
  for (const auto& [k, v] : root["auths"].items()) {
    if (strip_key(k) != want || !v.is_object()) continue;
    Credentials c;
    if (v.contains("auth") && v["auth"].is_string() && !v["auth"].get<std::string>().empty()) {
      auto dec = base64_decode(v["auth"].get<std::string>());
      auto colon = dec ? dec->find(':') : std::string::npos;
      if (colon == std::string::npos)
        throw Error(ErrorKind::InvalidArgument, "credentials for " + quote(key) + ": \"auth\" is not base64 of user:password");
      c.username = dec->substr(0, colon);
      c.password = dec->substr(colon + 1);
    }
    if (v.contains("username") && v["username"].is_string()) c.username = v["username"];
    if (v.contains("password") && v["password"].is_string()) c.password = v["password"];
    if (v.contains("identitytoken") && v["identitytoken"].is_string()) c.identity_token = v["identitytoken"];
    if (c.empty()) return std::nullopt;
    return c;
  }
  return std::nullopt;
}

// Runs `docker-credential-NAME verb`, feeding `input` on stdin; returns stdout and exit status.
std::pair<int, std::string> run_helper(const std::string& name, const std::string& verb, const std::string& input) {
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw_errno("pipe", "");
  UniqueFd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe", "");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  const std::string prog = "docker-credential-" + name;
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork", prog);
  if (pid == 0) {
    ::dup2(in_r.get(), 0);
    ::dup2(out_w.get(), 1);
    ::execlp(prog.c_str(), prog.c_str(), verb.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  in_r.reset();
  out_w.reset();
  try {
    write_all(in_w.get(), input.data(), input.size(), prog);
  } catch (const Error&) {
    // The helper may exit without reading; its exit status tells the story.
  }
  in_w.reset();
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(out_r.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.size() < (1u << 20)) out.append(buf, static_cast<std::size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return {code, out};
}

std::string helper_for(const json& root, std::string_view key) {
  const std::string want = strip_key(key);
  if (root.contains("credHelpers") && root["credHelpers"].is_object())
    for (const auto& [k, v] : root["credHelpers"].items())
      if (strip_key(k) == want && v.is_string()) return v;
  if (root.contains("credsStore") && root["credsStore"].is_string()) return root["credsStore"];
  return {};
}

std::optional<Credentials> from_helper(const std::string& helper, std::string_view key) {
  auto [code, out] = run_helper(helper, "get", std::string(key));
  if (code != 0) {
    // Helpers say "credentials not found in native keychain" for an unknown server.
    if (out.find("not found") != std::string::npos) return std::nullopt;
    throw Error(ErrorKind::Unauthenticated, "credential helper docker-credential-" + helper + " get " + quote(key) +
                                                " failed (exit " + std::to_string(code) + ")");
  }
  auto j = json::parse(out, nullptr, false);
  if (!j.is_object())
    throw Error(ErrorKind::Unauthenticated, "credential helper docker-credential-" + helper + " answered non-JSON for " + quote(key));
  Credentials c;
  std::string user = j.value("Username", std::string{});
  std::string secret = j.value("Secret", std::string{});
  // Docker's convention: username "<token>" means the secret is an identity (refresh) token.
  if (user == "<token>") c.identity_token = secret;
  else { c.username = user; c.password = secret; }
  if (c.empty()) return std::nullopt;
  return c;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

}  // namespace

CredentialStore::Paths CredentialStore::default_paths() {
  Paths p;
  std::string home = env_or("HOME", "/root");
  std::string dc = env_or("DOCKER_CONFIG", home + "/.docker");
  p.docker_config = std::filesystem::path(dc) / "config.json";
  if (const char* f = std::getenv("REGISTRY_AUTH_FILE"); f && *f) p.auth_json = f;
  else if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x)
    p.auth_json = std::filesystem::path(x) / "containers" / "auth.json";
  return p;
}

CredentialStore::CredentialStore(Paths paths) : paths_(std::move(paths)) {}

std::optional<Credentials> CredentialStore::lookup(std::string_view key) const {
  if (!paths_.auth_json.empty())
    if (auto j = load_json(paths_.auth_json))
      if (auto c = from_auths(*j, key)) return c;
  auto j = load_json(paths_.docker_config);
  if (!j) return std::nullopt;
  const json& root = *j;
  if (root.contains("credHelpers") && root["credHelpers"].is_object()) {
    for (const auto& [k, v] : root["credHelpers"].items())
      if (strip_key(k) == strip_key(key) && v.is_string()) return from_helper(v, key);
  }
  if (auto c = from_auths(root, key)) return c;
  if (root.contains("credsStore") && root["credsStore"].is_string())
    return from_helper(root["credsStore"], key);
  return std::nullopt;
}

void CredentialStore::store(std::string_view key, const Credentials& creds) const {
  json root = load_json(paths_.docker_config).value_or(json::object());
  const std::string helper = helper_for(root, key);
  if (!helper.empty()) {
    json in{{"ServerURL", std::string(key)},
            {"Username", creds.identity_token.empty() ? creds.username : "<token>"},
            {"Secret", creds.identity_token.empty() ? creds.password : creds.identity_token}};
    auto [code, out] = run_helper(helper, "store", in.dump());
    if (code != 0)
      throw Error(ErrorKind::Unauthenticated, "credential helper docker-credential-" + helper + " store " + quote(key) +
                                                  " failed (exit " + std::to_string(code) + ")");
    return;
  }
  if (!root.contains("auths") || !root["auths"].is_object()) root["auths"] = json::object();
  // Drop other spellings of the same registry so lookups are unambiguous.
  for (auto it = root["auths"].begin(); it != root["auths"].end();) {
    if (strip_key(it.key()) == strip_key(key)) it = root["auths"].erase(it);
    else ++it;
  }
  json entry = json::object();
  if (!creds.username.empty() || !creds.password.empty())
    entry["auth"] = base64_encode(creds.username + ":" + creds.password);
  if (!creds.identity_token.empty()) entry["identitytoken"] = creds.identity_token;
  root["auths"][std::string(key)] = entry;
  make_dirs(paths_.docker_config.parent_path(), 0700);
  write_file_atomic(paths_.docker_config, root.dump(1, '\t') + "\n", 0600);
}

bool CredentialStore::erase(std::string_view key) const {
  auto loaded = load_json(paths_.docker_config);
  bool removed = false;
  if (loaded) {
    json& root = *loaded;
    const std::string helper = helper_for(root, key);
    if (!helper.empty()) {
      auto [code, out] = run_helper(helper, "erase", std::string(key));
      removed = code == 0;
    }
    if (root.contains("auths") && root["auths"].is_object()) {
      for (auto it = root["auths"].begin(); it != root["auths"].end();) {
        if (strip_key(it.key()) == strip_key(key)) { it = root["auths"].erase(it); removed = true; }
        else ++it;
      }
      write_file_atomic(paths_.docker_config, root.dump(1, '\t') + "\n", 0600);
    }
  }
  return removed;
}

std::string base64_encode(std::string_view in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += tbl[v >> 18]; out += tbl[(v >> 12) & 63]; out += tbl[(v >> 6) & 63]; out += tbl[v & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += tbl[v >> 18]; out += tbl[(v >> 12) & 63]; out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += tbl[v >> 18]; out += tbl[(v >> 12) & 63]; out += tbl[(v >> 6) & 63]; out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace cbuild::registry
