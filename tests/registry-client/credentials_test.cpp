// Credentials: docker config auths/credHelpers/credsStore, containers auth.json, login's store
// and erase; WWW-Authenticate parsing.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "registry-client/auth_challenge.h"
#include "registry-client/credentials.h"

using namespace cbuild;
using namespace cbuild::registry;
namespace fs = std::filesystem;

namespace {
void write(const fs::path& p, const std::string& s, int mode = 0644) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
  ::chmod(p.c_str(), static_cast<mode_t>(mode));
}
}  // namespace

TEST_CASE("credentials: auths in every spelling, auth.json first, bad JSON named") {
  TempDir d;
  CredentialStore::Paths p{d.path() / "config.json", d.path() / "auth.json"};
  write(p.docker_config, nlohmann::json{{"auths",
                                         {{"https://index.docker.io/v1/", {{"auth", base64_encode("hub:pw1")}}},
                                          {"http://quay.io/v2/", {{"auth", base64_encode("q:pw2")}}},
                                          {"127.0.0.1:5000", {{"auth", base64_encode("me:pw3")}, {"identitytoken", "idt"}}}}}}
                             .dump());
  CredentialStore s(p);
  auto hub = s.lookup("https://index.docker.io/v1/");
  REQUIRE(hub);
  CHECK(hub->username == "hub");
  CHECK(hub->password == "pw1");
  CHECK(s.lookup("quay.io")->password == "pw2");
  CHECK(s.lookup("127.0.0.1:5000")->identity_token == "idt");
  CHECK_FALSE(s.lookup("ghcr.io"));

  write(p.auth_json, nlohmann::json{{"auths", {{"quay.io", {{"auth", base64_encode("podman:pw4")}}}}}}.dump());
  CHECK(s.lookup("quay.io")->username == "podman");

  write(p.docker_config, "{not json");
  try {
    (void)s.lookup("ghcr.io");
    FAIL("bad JSON accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::InvalidArgument);
    CHECK(std::string(e.what()).find("config.json") != std::string::npos);
  }
}

TEST_CASE("credentials: store and erase keep other fields; helpers via docker-credential-NAME") {
  TempDir d;
  CredentialStore::Paths p{d.path() / "config.json", d.path() / "none.json"};
  write(p.docker_config, R"({"psFormat":"table","auths":{"other.io":{"auth":"eDp5"}}})");
  CredentialStore s(p);
  s.store("127.0.0.1:5000", Credentials{"u", "p:w", ""});
  CHECK(s.lookup("127.0.0.1:5000")->password == "p:w");
  auto j = nlohmann::json::parse(read_file(p.docker_config));
  CHECK(j["psFormat"] == "table");
  CHECK(j["auths"].contains("other.io"));
  struct stat st {};
  REQUIRE(::stat(p.docker_config.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(s.erase("127.0.0.1:5000"));
  CHECK_FALSE(s.erase("127.0.0.1:5000"));
  CHECK_FALSE(s.lookup("127.0.0.1:5000"));

  // A fake helper on PATH: `get` answers for one server, fails for others.
  auto bin = d.path() / "bin";
  write(bin / "docker-credential-fake",
        "#!/bin/sh\nread key\nif [ \"$1\" = get ] && [ \"$key\" = helped.io ]; then\n"
        "  echo '{\"ServerURL\":\"helped.io\",\"Username\":\"hu\",\"Secret\":\"hs\"}'; exit 0; fi\n"
        "if [ \"$key\" = broken.io ]; then echo 'keychain locked'; exit 3; fi\n"
        "echo 'credentials not found in native keychain'; exit 1\n",
        0755);
  std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", (bin.string() + ":" + old_path).c_str(), 1);
  write(p.docker_config, R"({"credHelpers":{"helped.io":"fake","broken.io":"fake","unknown.io":"fake"}})");
  auto c = s.lookup("helped.io");
  REQUIRE(c);
  CHECK(c->username == "hu");
  CHECK(c->password == "hs");
  // "not found" means anonymous, as docker does; any other failure is an error naming the helper.
  CHECK_FALSE(s.lookup("unknown.io"));
  try {
    (void)s.lookup("broken.io");
    FAIL("a failing helper was ignored");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("docker-credential-fake") != std::string::npos);
  }
  ::setenv("PATH", old_path.c_str(), 1);
}

TEST_CASE("WWW-Authenticate parsing and challenge choice") {
  auto v = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull,push")");
  REQUIRE(v.size() == 1);
  CHECK(v[0].scheme == "bearer");
  CHECK(v[0].param("realm") == "https://auth.docker.io/token");
  CHECK(v[0].param("scope") == "repository:library/x:pull,push");
  auto two = parse_www_authenticate(R"(Basic realm="Registry Realm", Bearer realm="https://t/x",service="s")");
  CHECK(two.size() == 2);
  auto pick = pick_challenge({R"(Basic realm="r")", R"(Bearer realm="https://t/x")"});
  REQUIRE(pick);
  CHECK(pick->scheme == "bearer");
  CHECK_FALSE(pick_challenge({"Negotiate"}));
  CHECK(parse_www_authenticate("").empty());
}
