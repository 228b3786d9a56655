// Transport against a real docker-registry: scheme choice, certs.d trust, Basic auth, errors.
#include <doctest/doctest.h>

#include "oci/digest.h"
#include "registry-client/registry_error.h"
#include "registry-client/transport.h"
#include "tests/support/registry_server.h"

using namespace cbuild;
using namespace cbuild::registry;
using cbuild::test::RegistryServer;

TEST_CASE("transport: plain HTTP loopback registry is reached after the TLS handshake fails") {
  RegistryServer srv;
  TransportOptions o;
  o.certs_dirs = {"/nonexistent"};
  Transport t(srv.host(), o);
  CHECK(t.base_url() == "http://" + srv.host());

  Call c;
  c.path = "/v2/";
  auto r = t.send(c);
  CHECK(r.status == 200);

  Call m;
  m.path = "/v2/nosuch/repo/manifests/1.0";
  m.headers.emplace_back("Accept", "application/vnd.oci.image.manifest.v1+json");
  m.what = "pull \"" + srv.host() + "/nosuch/repo:1.0\"";
  r = t.send(m);
  CHECK(r.status == 404);
  try {
    expect_status(r, {200}, m.what, srv.host());
    FAIL("expected a RegistryError");
  } catch (const RegistryError& e) {
    CHECK(e.http_status() == 404);
    CHECK((e.has_code("NAME_UNKNOWN") || e.has_code("MANIFEST_UNKNOWN")));
    CHECK(std::string(e.what()).find("nosuch/repo:1.0") != std::string::npos);
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
}

TEST_CASE("transport: a non-loopback-looking secure host is never downgraded") {
  // A secure registry (tls_verify on, not loopback) must not fall back to plain HTTP. We cannot
  // use a non-loopback address here, so check the loopback rule itself.
  CHECK(is_loopback_host("127.0.0.1:5000"));
  CHECK(is_loopback_host("localhost"));
  CHECK(is_loopback_host("[::1]:5000"));
  CHECK_FALSE(is_loopback_host("registry.example.com:5000"));
  CHECK_FALSE(is_loopback_host("10.0.0.1"));
}

TEST_CASE("transport: TLS registry with certs.d CA and htpasswd Basic auth") {
  RegistryServer srv(RegistryServer::Mode::TlsHtpasswd);

  SUBCASE("the certs.d CA verifies the server; good credentials log in") {
    TransportOptions o;
    o.certs_dirs = {srv.certs_dir()};
    o.credentials = Credentials{srv.user(), srv.password(), ""};
    Transport t(srv.host(), o);
    CHECK(t.base_url() == "https://" + srv.host());
    CHECK_NOTHROW(t.check_login({}));
    Call c;
    c.path = "/v2/_catalog";
    CHECK(t.send(c).status == 200);
  }
  SUBCASE("a wrong password is refused with one line naming the registry") {
    TransportOptions o;
    o.certs_dirs = {srv.certs_dir()};
    o.credentials = Credentials{srv.user(), "wrong", ""};
    Transport t(srv.host(), o);
    try {
      t.check_login({});
      FAIL("login with a wrong password succeeded");
    } catch (const RegistryError& e) {
      CHECK(e.kind() == ErrorKind::Unauthenticated);
      CHECK(e.has_code("UNAUTHORIZED"));
      CHECK(std::string(e.what()).find(srv.host()) != std::string::npos);
    }
  }
  SUBCASE("anonymous access gets 401 UNAUTHORIZED") {
    TransportOptions o;
    o.certs_dirs = {srv.certs_dir()};
    Transport t(srv.host(), o);
    Call c;
    c.path = "/v2/_catalog";
    auto r = t.send(c);
    CHECK(r.status == 401);
    CHECK_THROWS_AS(t.check_login({}), RegistryError);
  }
  SUBCASE("without the CA the loopback registry is not trusted over HTTPS") {
    TransportOptions o;
    o.certs_dirs = {"/nonexistent"};
    o.credentials = Credentials{srv.user(), srv.password(), ""};
    Transport t(srv.host(), o);
    // The handshake fails, plain HTTP is tried and the TLS port refuses it: an error, never a
    // silently unverified connection.
    CHECK_THROWS_AS(t.check_login({}), Error);
  }
  SUBCASE("--tls-verify=false accepts the unverified certificate") {
    TransportOptions o;
    o.tls_verify = false;
    o.certs_dirs = {"/nonexistent"};
    o.credentials = Credentials{srv.user(), srv.password(), ""};
    Transport t(srv.host(), o);
    CHECK(t.base_url() == "https://" + srv.host());
    CHECK_NOTHROW(t.check_login({}));
  }
}

TEST_CASE("transport: a registry that is down is a connection error naming it") {
  int port = cbuild::test::free_loopback_port();
  TransportOptions o;
  o.max_attempts = 2;
  o.backoff = std::chrono::milliseconds(10);
  o.certs_dirs = {"/nonexistent"};
  Transport t("127.0.0.1:" + std::to_string(port), o);
  try {
    t.base_url();
    FAIL("reached a closed port");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  }
}
