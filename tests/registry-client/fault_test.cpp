// Pull and push through FaultProxy: cut connections resume, 500/429 are retried, a corrupt
// blob is refused with nothing left behind, a stopped registry is one clear error.
#include <doctest/doctest.h>

#include <filesystem>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "registry-client/puller.h"
#include "registry-client/pusher.h"
#include "tests/registry-client/test_image.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/registry_server.h"

using namespace cbuild;
using namespace cbuild::registry;
using cbuild::test::FaultProxy;
using cbuild::test::RegistryServer;
namespace fs = std::filesystem;

namespace {

TransportOptions quick_opts() {
  TransportOptions o;
  o.certs_dirs = {"/nonexistent"};
  o.backoff = std::chrono::milliseconds(20);
  o.max_attempts = 4;
  return o;
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

struct Fixture {
  RegistryServer srv;
  TempDir dir;
  std::unique_ptr<oci::LayoutStore> src = oci::LayoutStore::open(dir.path() / "src");
  oci::Descriptor img = test::make_test_image(*src, {400000, 2000}, 77);
  oci::Manifest manifest = oci::Manifest::parse(src->read_blob(img.digest));
  Fixture() {
    Transport t(srv.host(), quick_opts());
    Pusher(t, *src).push(img, Reference::parse(srv.host() + "/f/img:1"));
  }
};

}  // namespace

TEST_CASE("a blob download cut in the middle is resumed with Range") {
  Fixture f;
  FaultProxy proxy(f.srv.port());
  const auto layer = f.manifest.layers[0].digest.str();
  proxy.add_rule({FaultProxy::Fault::CutBody, "GET", "/blobs/" + layer, 1});
  Transport t(proxy.host(), quick_opts());
  auto dst = oci::LayoutStore::open(f.dir.path() / "dst");
  auto res = Puller(t, *dst).pull(Reference::parse(proxy.host() + "/f/img:1"));
  CHECK(res.tagged.digest == f.img.digest);
  CHECK(proxy.faults_injected() == 1);
  bool ranged = false;
  for (const auto& s : proxy.seen())
    if (s.path.find(layer) != std::string::npos && s.range.rfind("bytes=", 0) == 0 && s.range != "bytes=0-") ranged = true;
  CHECK(ranged);
  CHECK(dst->read_blob(f.manifest.layers[0].digest) == f.src->read_blob(f.manifest.layers[0].digest));
}

TEST_CASE("500 and 429 replies are retried") {
  Fixture f;
  FaultProxy proxy(f.srv.port());
  proxy.add_rule({FaultProxy::Fault::Status500, "GET", "/manifests/", 2});
  proxy.add_rule({FaultProxy::Fault::Status429, "GET", "/blobs/", 1});
  Transport t(proxy.host(), quick_opts());
  auto dst = oci::LayoutStore::open(f.dir.path() / "dst");
  auto res = Puller(t, *dst).pull(Reference::parse(proxy.host() + "/f/img:1"));
  CHECK(res.tagged.digest == f.img.digest);
  CHECK(proxy.faults_injected() == 3);

  // And on push: a 500 on the upload PUT is retried too.
  proxy.add_rule({FaultProxy::Fault::Status500, "PUT", "/blobs/uploads/", 1});
  Transport t2(proxy.host(), quick_opts());
  auto pushed = Pusher(t2, *f.src).push(f.img, Reference::parse(proxy.host() + "/f/other:1"));
  CHECK(pushed.digest == f.img.digest);
  CHECK(proxy.faults_injected() == 4);
}

TEST_CASE("a blob whose bytes do not match its digest is refused and nothing is left") {
  Fixture f;
  FaultProxy proxy(f.srv.port());
  proxy.add_rule({FaultProxy::Fault::Corrupt, "GET", "/blobs/" + f.manifest.layers[0].digest.str(), -1});
  Transport t(proxy.host(), quick_opts());
  auto dst = oci::LayoutStore::open(f.dir.path() / "dst");
  try {
    Puller(t, *dst).pull(Reference::parse(proxy.host() + "/f/img:1"));
    FAIL("a corrupt blob was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find(f.manifest.layers[0].digest.str()) != std::string::npos);
  }
  CHECK_FALSE(dst->stat(f.manifest.layers[0].digest));
  CHECK_FALSE(dst->stat(f.img.digest));
  CHECK(dst->tags().empty());
  CHECK(count_files(dst->root() / "tmp") == 0);
}

TEST_CASE("a registry that stops gives one error naming it") {
  Fixture f;
  Transport t(f.srv.host(), quick_opts());
  (void)t.base_url();  // connected once
  f.srv.stop();
  auto dst = oci::LayoutStore::open(f.dir.path() / "dst");
  try {
    Puller(t, *dst).pull(Reference::parse(f.srv.host() + "/f/img:1"));
    FAIL("pulled from a stopped registry");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find(f.srv.host()) != std::string::npos);
    CHECK(m.find('\n') == std::string::npos);
  }
  CHECK(dst->tags().empty());
  CHECK(count_files(dst->root() / "tmp") == 0);
}

TEST_CASE("a chunked upload survives failed chunks") {
  Fixture f;
  FaultProxy proxy(f.srv.port());
  proxy.add_rule({FaultProxy::Fault::Status500, "PATCH", "/blobs/uploads/", 2});
  Transport t(proxy.host(), quick_opts());
  PushOptions po;
  po.chunk_size = 64 * 1024;
  auto ref = Reference::parse(proxy.host() + "/f/chunked:1");
  auto r = Pusher(t, *f.src, po).push(f.img, ref);
  CHECK(r.digest == f.img.digest);
  CHECK(proxy.faults_injected() == 2);
  int patches = 0;
  for (const auto& s : proxy.seen()) patches += s.method == "PATCH";
  CHECK(patches >= 7 + 2);  // 400000 bytes in 64 KiB chunks, plus the two refused ones
  auto dst = oci::LayoutStore::open(f.dir.path() / "dst");
  auto res = Puller(t, *dst).pull(ref);
  CHECK(dst->read_blob(f.manifest.layers[0].digest) == f.src->read_blob(f.manifest.layers[0].digest));
  CHECK(res.tagged.digest == f.img.digest);
}
