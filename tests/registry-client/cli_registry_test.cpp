// cbuild login / logout / push / pull as a user runs them, against the TLS + htpasswd registry.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "registry-client/reference.h"
#include "tests/registry-client/test_image.h"
#include "tests/support/registry_server.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using cbuild::test::RegistryServer;
using cbuild::test::run_cbuild;

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}
}  // namespace

TEST_CASE("cbuild login, push, pull, logout against a TLS registry with Basic auth") {
  RegistryServer srv(RegistryServer::Mode::TlsHtpasswd);
  TempDir home;
  auto cfg_dir = home.path() / "docker";
  const std::vector<std::string> env = {"DOCKER_CONFIG=" + cfg_dir.string(),
                                        "REGISTRY_AUTH_FILE=" + (home.path() / "none.json").string(),
                                        "CBUILD_CERTS_DIRS=" + srv.certs_dir().string()};

  // A refused login says which registry and why, and stores nothing.
  auto bad = run_cbuild({"login", "-u", srv.user(), "--password-stdin", srv.host()}, "nope\n", env);
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("cbuild: error:") != std::string::npos);
  CHECK(bad.err.find(srv.host()) != std::string::npos);
  CHECK(bad.err.find("UNAUTHORIZED") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(cfg_dir / "config.json"));

  // Without credentials a push is refused.
  auto root = home.path() / "root";
  auto img_digest = [&] {
    auto store = oci::LayoutStore::open(root);
    auto d = test::make_test_image(*store, {50000, 1234}, 42);
    store->set_tag(srv.host() + "/cli/app:1", d);
    return d.digest;
  }();
  auto anon = run_cbuild({"--root", root.string(), "push", "-q", srv.host() + "/cli/app:1"}, {}, env);
  CHECK(anon.exit_code == 1);
  CHECK(anon.err.find("UNAUTHORIZED") != std::string::npos);

  auto ok = run_cbuild({"login", "-u", srv.user(), "--password-stdin", srv.host()}, srv.password() + "\n", env);
  REQUIRE_MESSAGE(ok.exit_code == 0, ok.err);
  auto cfg = nlohmann::json::parse(read_file(cfg_dir / "config.json"));
  CHECK(cfg["auths"].contains(srv.host()));

  auto push = run_cbuild({"--root", root.string(), "push", "-q", srv.host() + "/cli/app:1", srv.host() + "/cli/copy:2"}, {}, env);
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);
  CHECK(trim(push.out) == img_digest.str());

  auto root2 = home.path() / "root2";
  auto pull = run_cbuild({"--root", root2.string(), "pull", "-q", srv.host() + "/cli/copy:2"}, {}, env);
  REQUIRE_MESSAGE(pull.exit_code == 0, pull.err);
  CHECK(trim(pull.out) == img_digest.str());
  {
    auto store = oci::LayoutStore::open(root2);
    auto t = store->resolve(srv.host() + "/cli/copy:2");
    REQUIRE(t);
    CHECK(t->digest == img_digest);
  }

  auto missing = run_cbuild({"--root", root2.string(), "pull", "-q", srv.host() + "/cli/copy:nope"}, {}, env);
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("MANIFEST_UNKNOWN") != std::string::npos);
  CHECK(missing.err.find(srv.host() + "/cli/copy:nope") != std::string::npos);

  auto out = run_cbuild({"logout", srv.host()}, {}, env);
  CHECK(out.exit_code == 0);
  cfg = nlohmann::json::parse(read_file(cfg_dir / "config.json"));
  CHECK_FALSE(cfg["auths"].contains(srv.host()));
  auto after = run_cbuild({"--root", root2.string(), "pull", "-q", srv.host() + "/cli/copy:2"}, {}, env);
  CHECK(after.exit_code == 1);
}

TEST_CASE("cbuild pull usage and bad references") {
  auto r = run_cbuild({"pull"});
  CHECK(r.exit_code == 2);
  auto bad = run_cbuild({"pull", "Upper/Case:1"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("cbuild: error:") != std::string::npos);
}
