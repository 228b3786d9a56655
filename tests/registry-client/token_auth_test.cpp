// Docker-Hub-style token auth end to end: docker-registry trusting the fixture's token issuer.
#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "registry-client/puller.h"
#include "registry-client/pusher.h"
#include "registry-client/registry_error.h"
#include "tests/registry-client/test_image.h"
#include "tests/support/registry_server.h"

using namespace cbuild;
using namespace cbuild::registry;
using cbuild::test::RegistryServer;

namespace {
TransportOptions opts(std::optional<Credentials> c) {
  TransportOptions o;
  o.certs_dirs = {"/nonexistent"};
  o.backoff = std::chrono::milliseconds(20);
  o.credentials = std::move(c);
  return o;
}
}  // namespace

TEST_CASE("token auth: credentialed push, anonymous pull, refresh-token push, refusals") {
  RegistryServer srv(RegistryServer::Mode::Token);
  TempDir dir;
  auto src = oci::LayoutStore::open(dir.path() / "src");
  auto img = test::make_test_image(*src, {30000, 4000, 5000}, 31);
  auto ref = Reference::parse(srv.host() + "/tok/app:1");

  {
    Transport t(srv.host(), opts(Credentials{srv.user(), srv.password(), ""}));
    CHECK_NOTHROW(t.check_login({}));
    int before = srv.token_requests();
    auto r = Pusher(t, *src).push(img, ref);
    CHECK(r.digest == img.digest);
    // Tokens are cached per scope: one pull,push token serves every blob and the manifest.
    CHECK(srv.token_requests() - before <= 2);
  }
  {
    Transport anon(srv.host(), opts(std::nullopt));
    auto dst = oci::LayoutStore::open(dir.path() / "dst");
    auto res = Puller(anon, *dst).pull(ref);
    CHECK(res.tagged.digest == img.digest);
    // An anonymous token carries no push right.
    try {
      Pusher(anon, *src).push(img, Reference::parse(srv.host() + "/tok/other:1"));
      FAIL("anonymous push succeeded");
    } catch (const RegistryError& e) {
      CHECK((e.has_code("UNAUTHORIZED") || e.has_code("DENIED")));
      CHECK(std::string(e.what()).find("tok/other:1") != std::string::npos);
    }
  }
  {
    // docker's identity token: OAuth2 POST grant_type=refresh_token.
    Transport t(srv.host(), opts(Credentials{"", "", srv.refresh_token()}));
    auto r = Pusher(t, *src).push(img, Reference::parse(srv.host() + "/tok/refreshed:1"));
    CHECK(r.digest == img.digest);
  }
  {
    Transport t(srv.host(), opts(Credentials{srv.user(), "wrong", ""}));
    try {
      t.check_login({});
      FAIL("wrong password accepted");
    } catch (const RegistryError& e) {
      CHECK(e.kind() == ErrorKind::Unauthenticated);
      CHECK(e.has_code("UNAUTHORIZED"));
    }
    Transport bad_refresh(srv.host(), opts(Credentials{"", "", "not-the-token"}));
    CHECK_THROWS_AS(Pusher(bad_refresh, *src).push(img, Reference::parse(srv.host() + "/tok/x:1")), RegistryError);
  }
}

TEST_CASE("token auth: a token endpoint that is down is one clear error; unknown images name the code") {
  RegistryServer srv(RegistryServer::Mode::Token);
  TempDir dir;
  auto dst = oci::LayoutStore::open(dir.path() / "dst");
  Transport anon(srv.host(), opts(std::nullopt));
  try {
    Puller(anon, *dst).pull(Reference::parse(srv.host() + "/nothing/here:1"));
    FAIL("pulled a missing image");
  } catch (const RegistryError& e) {
    CHECK((e.has_code("MANIFEST_UNKNOWN") || e.has_code("NAME_UNKNOWN")));
    CHECK(std::string(e.what()).find("nothing/here:1") != std::string::npos);
  }

  srv.stop_token_issuer();
  Transport t(srv.host(), opts(std::nullopt));
  try {
    Puller(t, *dst).pull(Reference::parse(srv.host() + "/some/image:1"));
    FAIL("pulled without a token endpoint");
  } catch (const RegistryError& e) {
    std::string m = e.what();
    CHECK(e.kind() == ErrorKind::Unavailable);
    CHECK(m.find("token endpoint") != std::string::npos);
    CHECK(m.find("some/image:1") != std::string::npos);
    CHECK(m.find('\n') == std::string::npos);
  }
  CHECK(dst->tags().empty());
}
