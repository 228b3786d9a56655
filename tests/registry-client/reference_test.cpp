#include <doctest/doctest.h>

#include <string>

#include "oci/base/error.h"
#include "registry-client/reference.h"

using cbuild::registry::Reference;

namespace {
const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string rejection(std::string_view s) {
  try {
    Reference::parse(s);
  } catch (const cbuild::Error& e) {
    CHECK(e.kind() == cbuild::ErrorKind::InvalidArgument);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("docker hub short names are normalized") {
  auto r = Reference::parse("alpine");
  CHECK(r.registry() == "docker.io");
  CHECK(r.repository() == "library/alpine");
  CHECK(r.tag() == "latest");
  CHECK(!r.digest());
  CHECK(r.str() == "docker.io/library/alpine:latest");
  CHECK(r.familiar() == "alpine:latest");
  CHECK(r.familiar_name() == "alpine");
  CHECK(r.api_host() == "registry-1.docker.io");
  CHECK(r.credential_key() == "https://index.docker.io/v1/");

  // Three spellings name one image.
  CHECK(Reference::parse("busybox:1.35").str() == "docker.io/library/busybox:1.35");
  CHECK(Reference::parse("library/busybox:1.35") == Reference::parse("busybox:1.35"));
  CHECK(Reference::parse("docker.io/library/busybox:1.35") == Reference::parse("busybox:1.35"));
  CHECK(Reference::parse("index.docker.io/library/busybox:1.35") == Reference::parse("busybox:1.35"));
  CHECK(Reference::parse("user/app").str() == "docker.io/user/app:latest");
  CHECK(Reference::parse("user/app").familiar() == "user/app:latest");
  // library/x/y keeps its prefix in the familiar form.
  CHECK(Reference::parse("library/x/y:1").familiar() == "library/x/y:1");
}

TEST_CASE("hosts, ports, nested paths, tags and digests") {
  auto r = Reference::parse("localhost:5000/team/sub/app:v1.2-rc_3");
  CHECK(r.registry() == "localhost:5000");
  CHECK(r.repository() == "team/sub/app");
  CHECK(r.tag() == "v1.2-rc_3");
  CHECK(r.api_host() == "localhost:5000");
  CHECK(r.credential_key() == "localhost:5000");
  CHECK(r.familiar() == "localhost:5000/team/sub/app:v1.2-rc_3");

  CHECK(Reference::parse("localhost/app").registry() == "localhost");
  CHECK(Reference::parse("127.0.0.1:5000/app").registry() == "127.0.0.1:5000");
  CHECK(Reference::parse("quay.io/coreos/etcd").str() == "quay.io/coreos/etcd:latest");
  CHECK(Reference::parse("[::1]:5000/app:1").registry() == "[::1]:5000");

  auto d = Reference::parse("alpine@sha256:" + kHex);
  CHECK(d.tag().empty());
  REQUIRE(d.digest());
  CHECK(d.digest()->hex() == kHex);
  CHECK(d.str() == "docker.io/library/alpine@sha256:" + kHex);

  auto both = Reference::parse("reg.example:443/a/b:1@sha256:" + kHex);
  CHECK(both.tag() == "1");
  CHECK(both.str() == "reg.example:443/a/b:1@sha256:" + kHex);
  CHECK(both.with_tag("2").str() == "reg.example:443/a/b:2");
  CHECK(Reference::parse("a:1").with_digest(*both.digest()).str() == "docker.io/library/a:1@sha256:" + kHex);

  // A component with separators.
  CHECK(Reference::parse("docker.io/a__b.c-d---e/f_g").repository() == "a__b.c-d---e/f_g");
  CHECK(Reference::parse("a.b/c").registry() == "a.b");  // a dot makes the first component a host
  // Uppercase first component is a host (docker's rule), and is allowed there.
  CHECK(Reference::parse("Example/app").registry() == "Example");
}

TEST_CASE("malformed references are rejected with the rule they break") {
  CHECK(rejection("").find("empty") != std::string::npos);
  CHECK(rejection("Alpine").find("must be lowercase") != std::string::npos);
  CHECK(rejection("docker.io/Library/alpine").find("must be lowercase") != std::string::npos);
  CHECK(rejection("alpine:-bad").find("tag") != std::string::npos);
  CHECK(rejection("alpine:" + std::string(129, 'a')).find("tag") != std::string::npos);
  CHECK(rejection("alpine@sha256:abc").find("digest") != std::string::npos);
  CHECK(rejection("alpine@sha256:" + std::string(64, 'A')).find("digest") != std::string::npos);
  CHECK(rejection(kHex).find("64-byte hexadecimal") != std::string::npos);
  CHECK(rejection("a//b").find("component") != std::string::npos);
  CHECK(rejection("a/-b").find("component") != std::string::npos);
  CHECK(rejection("a_/b").find("component") != std::string::npos);
  CHECK(rejection("a/b/").find("component") != std::string::npos);
  CHECK(rejection("host:port/app").find("host") != std::string::npos);
  CHECK(rejection("-host.com/app").find("host") != std::string::npos);
  CHECK(rejection("a b").find("component") != std::string::npos);
  CHECK(rejection(":tag").find("empty") != std::string::npos);
  std::string long_name = "reg.io/" + std::string(250, 'a');
  CHECK(rejection(long_name).find("255") != std::string::npos);
  CHECK(Reference::try_parse("reg.io/" + std::string(248, 'a')));  // exactly 255
  CHECK(!Reference::try_parse("UP"));
  CHECK(rejection(std::string(2000, 'a')).find("1024") != std::string::npos);
  // A short name becomes docker.io/library/<name>: the cap applies to that form.
  CHECK(!Reference::try_parse(std::string(240, 'a')));
}
