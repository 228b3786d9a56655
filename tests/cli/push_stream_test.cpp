// A build with --push uploads each layer of the final image while it is written (a streamed
// PATCH, as docker push sends a blob) instead of after the build; counted by a proxy in front
// of the real registry. The pushed image is the one the store holds, byte for byte, whether
// the streams worked, were refused (the push then uploads as before), or were not needed;
// a stage the image only copies from is not streamed; a failed build leaves no upload behind.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "oci/base/fs.h"
#include "oci/manifest.h"
#include "tests/support/build_project.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/noise.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"

namespace cbuild {
namespace {

namespace fs = std::filesystem;

// A registry behind a counting proxy, holding the project's base as REG/lib/base:1.
struct Setup {
  test::RegistryServer registry;
  test::FaultProxy proxy{registry.port()};
  test::BuildProject p;
  std::string reg = proxy.host();
  Setup() {
    auto base = p.cbuild({"push", "-q", p.base, reg + "/lib/base:1"});
    REQUIRE_MESSAGE(base.exit_code == 0, base.err);
  }
};

struct Uploads {
  std::size_t streamed = 0;        // body bytes of PATCHes
  std::size_t patches = 0;
  std::set<std::string> put_with_body;  // digests uploaded in a monolithic PUT
};

Uploads uploads(const test::FaultProxy& proxy) {
  Uploads u;
  for (const auto& s : proxy.seen()) {
    if (s.method == "PATCH") ++u.patches, u.streamed += s.request_body;
    if (auto at = s.path.find("digest=sha256:"); s.method == "PUT" && s.request_body > 0 && at != std::string::npos)
      u.put_with_body.insert(s.path.substr(at + 7, 71));
  }
  return u;
}

// The manifest the registry serves for `ref` is the store's, and every layer's bytes there
// are the store's.
void same_in_registry(const test::BuildProject& p, const std::string& ref) {
  oci::Manifest local = p.manifest(ref);
  test::BuildProject other;
  auto pulled = other.cbuild({"pull", "-q", ref});
  REQUIRE_MESSAGE(pulled.exit_code == 0, pulled.err);
  CHECK(other.tag(ref)->digest == p.tag(ref)->digest);
  for (const auto& l : local.layers) {
    CAPTURE(l.digest.str());
    CHECK(read_file(other.root / "blobs/sha256" / l.digest.hex()) == read_file(p.root / "blobs/sha256" / l.digest.hex()));
  }
}

// Upload sessions still holding bytes. (A cancelled session's directory keeps an empty hash
// state in docker-registry 2.8; its bytes are gone.)
std::size_t leftover_uploads(const test::RegistryServer& registry) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(registry.storage_dir(), ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->path().filename() == "data" && it->path().string().find("/_uploads/") != std::string::npos) ++n;
  return n;
}

}  // namespace

TEST_CASE("--push streams the final image's layers while they are written; each goes up once") {
  REQUIRE_ROOT();
  Setup t;
  auto& [registry, proxy, p, reg] = t;
  p.file("big.bin", test::noise(3u << 20, 7));
  p.file("small.txt", "s\n");
  p.file("Dockerfile", "FROM " + reg + "/lib/base:1 AS tools\nRUN head -c 2000000 /dev/urandom > /junk\n"
                       "FROM " + reg + "/lib/base:1\nCOPY big.bin /big.bin\nCOPY --from=tools /bin/busybox /bb\n"
                       "RUN echo ran > /ran\nCOPY small.txt /\n");
  proxy.clear_seen();
  // One clock for both builds, so the second makes the same layers.
  const std::vector<std::string> epoch{"SOURCE_DATE_EPOCH=1700000000"};
  auto r = p.build({"--push", "-t", reg + "/app/s:1"}, epoch);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  oci::Manifest m = p.manifest(reg + "/app/s:1");
  REQUIRE(m.layers.size() == 5);
  std::int64_t built = 0;  // the four layers this build made (the base's was there)
  for (std::size_t i = 1; i < m.layers.size(); ++i) built += m.layers[i].size;
  Uploads u = uploads(proxy);
  // Every built layer went up in its streamed PATCH, none again, and the tools stage's 2 MB
  // layer (not in the image) not at all.
  CHECK(u.patches == 4);
  CHECK(r.err.find("4 layer(s) uploaded to " + reg + "/app/s:1 while they were built") != std::string::npos);
  CHECK(u.streamed == static_cast<std::size_t>(built));
  for (std::size_t i = 1; i < m.layers.size(); ++i) CHECK(u.put_with_body.count(m.layers[i].digest.str()) == 0);
  same_in_registry(p, reg + "/app/s:1");
  CHECK(leftover_uploads(registry) == 0);

  // Built again byte for byte (--no-cache): the registry has every layer; nothing is waited
  // for, nothing uploaded again by the push, and no session is left open.
  proxy.clear_seen();
  auto again = p.build({"--no-cache", "--push", "-t", reg + "/app/s:2"}, epoch);
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(uploads(proxy).put_with_body.empty());
  CHECK(again.err.find("while they were built") == std::string::npos);
  same_in_registry(p, reg + "/app/s:2");
  CHECK(leftover_uploads(registry) == 0);
}

TEST_CASE("--push to a registry that refuses streamed uploads pushes the same image the usual way") {
  REQUIRE_ROOT();
  Setup t;
  auto& [registry, proxy, p, reg] = t;
  proxy.add_rule({test::FaultProxy::Fault::Status500, "PATCH", "/blobs/uploads/", -1});
  p.file("big.bin", test::noise(1u << 20, 9));
  p.file("Dockerfile", "FROM " + reg + "/lib/base:1\nCOPY big.bin /big.bin\nRUN echo ran > /ran\n");
  proxy.clear_seen();
  auto r = p.build({"--push", "-t", reg + "/app/r:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  oci::Manifest m = p.manifest(reg + "/app/r:1");
  REQUIRE(m.layers.size() == 3);
  Uploads u = uploads(proxy);
  CHECK(u.patches >= 2);  // tried
  for (std::size_t i = 1; i < m.layers.size(); ++i) CHECK(u.put_with_body.count(m.layers[i].digest.str()) == 1);
  CHECK(r.err.find("was not streamed") != std::string::npos);
  same_in_registry(p, reg + "/app/r:1");
  CHECK(leftover_uploads(registry) == 0);
}

TEST_CASE("a --push build that fails after a layer was streamed leaves no upload in the registry") {
  REQUIRE_ROOT();
  test::RegistryServer registry;
  test::BuildProject p;
  const std::string reg = registry.host();
  auto base = p.cbuild({"push", "-q", p.base, reg + "/lib/base:1"});
  REQUIRE_MESSAGE(base.exit_code == 0, base.err);
  p.file("big.bin", test::noise(2u << 20, 11));
  p.file("Dockerfile", "FROM " + reg + "/lib/base:1\nCOPY big.bin /big.bin\nRUN exit 3\n");
  auto r = p.build({"--push", "-t", reg + "/app/f:1"});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("Dockerfile:3") != std::string::npos);
  CHECK(leftover_uploads(registry) == 0);
  // And the registry has no layer of the failed build: only the base's blobs.
  std::size_t blobs = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(registry.storage_dir() / "docker/registry/v2/blobs", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename() == "data") ++blobs;
  oci::Manifest base_manifest = p.manifest("docker.io/library/" + p.base);
  CHECK(blobs == base_manifest.layers.size() + 2);  // layers, config, manifest
}

}  // namespace cbuild
