// Push and pull against a real docker-registry, with LayoutStore on both sides, and skopeo as
// a second client.
#include <doctest/doctest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "registry-client/blob_origins.h"
#include "registry-client/origin_fetcher.h"
#include "registry-client/puller.h"
#include "registry-client/pusher.h"
#include "registry-client/registry_error.h"
#include "tests/registry-client/test_image.h"
#include "tests/support/registry_server.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using namespace cbuild::registry;
using cbuild::test::RegistryServer;
namespace fs = std::filesystem;

namespace {

TransportOptions plain_opts() {
  TransportOptions o;
  o.certs_dirs = {"/nonexistent"};
  o.backoff = std::chrono::milliseconds(20);
  return o;
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

}  // namespace

TEST_CASE("push then pull into an empty store keeps every digest; a second pull fetches nothing") {
  RegistryServer srv;
  TempDir a, b;
  auto src = oci::LayoutStore::open(a.path() / "store");
  auto img = test::make_test_image(*src, {300000, 5000, 70000}, 7);
  auto ref = Reference::parse(srv.host() + "/team/app:1.0");

  Transport t(srv.host(), plain_opts());
  BlobOrigins origins_a(src->root());
  PushOptions po;
  po.origins = &origins_a;
  auto pushed = Pusher(t, *src, po).push(img, ref);
  CHECK(pushed.digest == img.digest);
  CHECK(pushed.blobs_uploaded == 4);

  // Pushing again finds every blob there already.
  auto again = Pusher(t, *src, po).push(img, ref);
  CHECK(again.blobs_existing == 4);
  CHECK(again.blobs_uploaded == 0);

  auto dst = oci::LayoutStore::open(b.path() / "store");
  BlobOrigins origins_b(dst->root());
  PullOptions pl;
  pl.origins = &origins_b;
  auto res = Puller(t, *dst, pl).pull(ref);
  CHECK(res.tagged.digest == img.digest);
  CHECK(res.blobs_fetched == 4);
  CHECK(res.bytes_fetched == 300000 + 5000 + 70000 + static_cast<std::uint64_t>(src->stat(oci::Manifest::parse(src->read_blob(img.digest)).config.digest).value()));
  auto tagged = dst->resolve(ref.str());
  REQUIRE(tagged);
  CHECK(tagged->digest == img.digest);
  CHECK(dst->read_blob(img.digest) == src->read_blob(img.digest));
  CHECK(origins_b.repositories(img.digest, ref.registry()) == std::vector<std::string>{"team/app"});

  auto res2 = Puller(t, *dst, pl).pull(ref);
  CHECK(res2.blobs_fetched == 0);
  CHECK(res2.blobs_present == 4);
  CHECK(res2.bytes_fetched == 0);

  // By digest too.
  auto by_digest = Reference::parse(srv.host() + "/team/app@" + img.digest.str());
  auto res3 = Puller(t, *dst, pl).pull(by_digest);
  CHECK(res3.tagged.digest == img.digest);
}

TEST_CASE("chunked upload with a small chunk size round-trips") {
  RegistryServer srv;
  TempDir a, b;
  auto src = oci::LayoutStore::open(a.path() / "s");
  auto img = test::make_test_image(*src, {1000000}, 11);
  auto ref = Reference::parse(srv.host() + "/chunky:1");
  Transport t(srv.host(), plain_opts());
  PushOptions po;
  po.chunk_size = 128 * 1024;
  auto pushed = Pusher(t, *src, po).push(img, ref);
  CHECK(pushed.blobs_uploaded == 2);
  auto dst = oci::LayoutStore::open(b.path() / "s");
  auto res = Puller(t, *dst).pull(ref);
  CHECK(res.tagged.digest == img.digest);
  auto m = oci::Manifest::parse(dst->read_blob(img.digest));
  CHECK(dst->read_blob(m.layers[0].digest) == src->read_blob(m.layers[0].digest));
}

TEST_CASE("cross-repository mount when the store knows where a blob came from") {
  RegistryServer srv;
  TempDir a;
  auto store = oci::LayoutStore::open(a.path() / "s");
  auto img = test::make_test_image(*store, {40000, 50000}, 3);
  Transport t(srv.host(), plain_opts());
  BlobOrigins origins(store->root());
  PushOptions po;
  po.origins = &origins;
  Pusher(t, *store, po).push(img, Reference::parse(srv.host() + "/base/one:1"));
  auto r = Pusher(t, *store, po).push(img, Reference::parse(srv.host() + "/other/two:1"));
  CHECK(r.blobs_mounted == 3);
  CHECK(r.blobs_uploaded == 0);
  TempDir b;
  auto dst = oci::LayoutStore::open(b.path() / "s");
  CHECK(Puller(t, *dst).pull(Reference::parse(srv.host() + "/other/two:1")).tagged.digest == img.digest);
}

TEST_CASE("a lazy pull leaves the layers in the registry; a push mounts them, or fetches them to upload") {
  RegistryServer srv, other;
  TempDir a, b;
  auto src = oci::LayoutStore::open(a.path() / "s");
  auto img = test::make_test_image(*src, {40000, 50000}, 5);
  auto layers = oci::Manifest::parse(src->read_blob(img.digest)).layers;
  Transport t(srv.host(), plain_opts());
  BlobOrigins origins_a(src->root());
  Pusher(t, *src, PushOptions{.origins = &origins_a}).push(img, Reference::parse(srv.host() + "/base/one:1"));

  auto dst = oci::LayoutStore::open(b.path() / "s");
  BlobOrigins origins_b(dst->root());
  auto pulled = Puller(t, *dst, PullOptions{.origins = &origins_b, .lazy_layers = true})
                    .pull(Reference::parse(srv.host() + "/base/one:1"));
  CHECK(pulled.tagged.digest == img.digest);
  CHECK(pulled.blobs_fetched == 1);  // the config
  for (const auto& l : layers) CHECK(!dst->stat(l.digest));

  // Same registry: every blob is mounted, none is read (the store has no layer to read).
  auto mounted = Pusher(t, *dst, PushOptions{.origins = &origins_b}).push(img, Reference::parse(srv.host() + "/other/two:1"));
  CHECK(mounted.blobs_mounted == 3);
  CHECK(mounted.blobs_uploaded == 0);
  for (const auto& l : layers) CHECK(!dst->stat(l.digest));

  // Another registry, without a fetcher: the missing blob fails the push, naming it.
  Transport t2(other.host(), plain_opts());
  try {
    Pusher(t2, *dst, PushOptions{.origins = &origins_b}).push(img, Reference::parse(other.host() + "/copy:1"));
    FAIL("the push did not fail");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::NotFound);
    std::string what = e.what();
    CHECK_MESSAGE((what.find(layers[0].digest.str()) != std::string::npos ||
                   what.find(layers[1].digest.str()) != std::string::npos),
                  what);
  }
  // With the origin fetcher, the layers come from their origin, verified, and go up.
  dst->set_blob_fetcher(origin_fetcher(*dst, true));
  auto uploaded = Pusher(t2, *dst, PushOptions{.origins = &origins_b}).push(img, Reference::parse(other.host() + "/copy:1"));
  CHECK(uploaded.blobs_uploaded == 2);  // the config went up with the failed push
  CHECK(uploaded.blobs_existing == 1);
  for (const auto& l : layers) CHECK(dst->read_blob(l.digest) == src->read_blob(l.digest));
}

TEST_CASE("multi-platform index: host/--platform selection and --all-platforms") {
  RegistryServer srv;
  TempDir a;
  auto store = oci::LayoutStore::open(a.path() / "s");
  auto idx = test::make_test_index(*store, {"amd64", "arm64", "s390x"}, 20);
  auto ref = Reference::parse(srv.host() + "/multi:latest");
  Transport t(srv.host(), plain_opts());
  auto pushed = Pusher(t, *store).push(idx, ref);
  CHECK(pushed.digest == idx.digest);
  auto index = oci::Index::parse(store->read_blob(idx.digest));

  SUBCASE("--platform linux/arm64 tags that manifest") {
    TempDir b;
    auto dst = oci::LayoutStore::open(b.path() / "s");
    PullOptions o;
    o.platform = oci::Platform::parse("linux/arm64");
    auto res = Puller(t, *dst, o).pull(ref);
    CHECK(res.top.digest == idx.digest);
    CHECK(res.tagged.digest == index.manifests[1].digest);
    CHECK(dst->resolve(ref.str())->digest == index.manifests[1].digest);
    CHECK_FALSE(dst->stat(index.manifests[0].digest));
  }
  SUBCASE("--all-platforms tags the index with every manifest present") {
    TempDir b;
    auto dst = oci::LayoutStore::open(b.path() / "s");
    PullOptions o;
    o.all_platforms = true;
    auto res = Puller(t, *dst, o).pull(ref);
    CHECK(res.tagged.digest == idx.digest);
    for (const auto& d : index.manifests) CHECK(dst->stat(d.digest));
    CHECK(dst->read_blob(idx.digest) == store->read_blob(idx.digest));
  }
  SUBCASE("a platform the index lacks is one clear error") {
    TempDir b;
    auto dst = oci::LayoutStore::open(b.path() / "s");
    PullOptions o;
    o.platform = oci::Platform::parse("linux/riscv64");
    try {
      Puller(t, *dst, o).pull(ref);
      FAIL("pulled a missing platform");
    } catch (const Error& e) {
      std::string m = e.what();
      CHECK(m.find("linux/riscv64") != std::string::npos);
      CHECK(m.find("linux/arm64") != std::string::npos);
    }
    CHECK(dst->tags().empty());
  }
}

TEST_CASE("pull errors name the reference and the registry's code, and leave nothing behind") {
  RegistryServer srv;
  TempDir a, b;
  auto src = oci::LayoutStore::open(a.path() / "s");
  auto img = test::make_test_image(*src, {1000}, 5);
  Transport t(srv.host(), plain_opts());
  Pusher(t, *src).push(img, Reference::parse(srv.host() + "/known:1"));
  auto dst = oci::LayoutStore::open(b.path() / "s");

  auto expect_code = [&](const std::string& r, const std::string& code) {
    try {
      Puller(t, *dst).pull(Reference::parse(r));
      FAIL("pull of " << r << " succeeded");
    } catch (const RegistryError& e) {
      std::string m = e.what();
      CHECK(e.has_code(code));
      CHECK(m.find(r) != std::string::npos);
      CHECK(m.find(code) != std::string::npos);
      CHECK(m.find('\n') == std::string::npos);
    }
  };
  expect_code(srv.host() + "/known:2", "MANIFEST_UNKNOWN");
  // docker-registry 2.8 answers MANIFEST_UNKNOWN for an unknown repository too.
  expect_code(srv.host() + "/unknown/repo:1", "MANIFEST_UNKNOWN");
  CHECK(dst->tags().empty());
  CHECK(count_files(dst->root() / "blobs" / "sha256") == 0);
  CHECK(count_files(dst->root() / "tmp") == 0);
}

TEST_CASE("skopeo reads what cbuild pushed, and cbuild pulls what skopeo pushed") {
  RegistryServer srv;
  TempDir a, b;
  auto src = oci::LayoutStore::open(a.path() / "s");
  auto img = test::make_test_image(*src, {200000, 3000}, 9);
  Transport t(srv.host(), plain_opts());
  Pusher(t, *src).push(img, Reference::parse(srv.host() + "/by-cbuild:1"));

  auto ins = test::run_command({"skopeo", "inspect", "--tls-verify=false", "--raw",
                                "docker://" + srv.host() + "/by-cbuild:1"});
  REQUIRE_MESSAGE(ins.exit_code == 0, ins.err);
  CHECK(ins.out == src->read_blob(img.digest));
  auto ins2 = test::run_command({"skopeo", "inspect", "--tls-verify=false", "docker://" + srv.host() + "/by-cbuild:1"});
  REQUIRE_MESSAGE(ins2.exit_code == 0, ins2.err);
  CHECK(nlohmann::json::parse(ins2.out)["Digest"] == img.digest.str());

  // skopeo copies an OCI layout to the registry; cbuild pulls it.
  src->set_tag("local/img:1", img);
  // (skopeo compresses our uncompressed layers on the way, so the digest is its own.)
  auto digest_file = (b.path() / "digest").string();
  auto cp = test::run_command({"skopeo", "copy", "--dest-tls-verify=false", "--digestfile", digest_file,
                               "oci:" + src->root().string() + ":local/img:1", "docker://" + srv.host() + "/by-skopeo:2"});
  REQUIRE_MESSAGE(cp.exit_code == 0, cp.err);
  auto skopeo_digest = read_file(digest_file);
  auto dst = oci::LayoutStore::open(b.path() / "s");
  auto res = Puller(t, *dst).pull(Reference::parse(srv.host() + "/by-skopeo:2"));
  CHECK(res.tagged.digest.str() == skopeo_digest);
  CHECK(res.blobs_fetched == 3);
  auto raw = test::run_command({"skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + srv.host() + "/by-skopeo:2"});
  CHECK(raw.out == dst->read_blob(res.tagged.digest));
}
