// Build-cache records (builder/cache/cache.h).
#include "builder/cache/cache.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <map>

#include "oci/base/fs.h"

using namespace cbuild;
using namespace cbuild::builder;

namespace {
// Blobs present by digest, for find()'s "layer still in the store" check.
class FakeBlobs final : public oci::BlobProvider {
 public:
  std::map<std::string, std::int64_t> have;
  std::optional<std::int64_t> stat(const oci::Digest& d) const override {
    auto it = have.find(d.str());
    if (it == have.end()) return std::nullopt;
    return it->second;
  }
  std::unique_ptr<oci::ByteSource> open(const oci::Digest&) const override { return nullptr; }
};
}  // namespace

TEST_CASE("cache keys chain parent and inputs without ambiguity") {
  CHECK(BuildCache::key("p", "x") == BuildCache::key("p", "x"));
  CHECK(BuildCache::key("p", "x") != BuildCache::key("p", "y"));
  CHECK(BuildCache::key("p", "x") != BuildCache::key("q", "x"));
  CHECK(BuildCache::key("ab", "c") != BuildCache::key("a", "bc"));
}

TEST_CASE("records round-trip, need their layer blob, and survive corruption as a miss") {
  TempDir root;
  BuildCache cache(root.path());
  FakeBlobs blobs;
  auto layer_digest = oci::Digest::of("layer bytes");
  auto key = BuildCache::key("base", "RUN x");
  CacheRecord rec;
  rec.layer = oci::Descriptor{.media_type = "application/vnd.oci.image.layer.v1.tar+gzip", .digest = layer_digest, .size = 11};
  rec.diff_id = oci::Digest::of("tar");
  rec.config_json = R"({"architecture":"amd64"})";
  rec.created = 42;
  cache.put(key, rec);

  CHECK_FALSE(cache.find(key, blobs));  // the layer blob is gone: a miss
  blobs.have[layer_digest.str()] = 11;
  auto got = cache.find(key, blobs);
  REQUIRE(got);
  CHECK(got->layer->digest == layer_digest);
  CHECK(*got->diff_id == *rec.diff_id);
  CHECK(got->config_json == rec.config_json);
  CHECK(got->created == 42);
  CHECK(cache.referenced_blobs() == std::vector<oci::Digest>{layer_digest});

  // A config-only record needs no blob.
  auto key2 = BuildCache::key(key.str(), "ENV A=1");
  cache.put(key2, {.config_json = "{}", .created = 1});
  CHECK(cache.find(key2, FakeBlobs{}));

  // A torn or foreign file is a miss, never an exception.
  write_file_atomic(root.path() / "cache/steps" / key.hex(), "{not json");
  CHECK_FALSE(cache.find(key, blobs));
  CHECK(cache.clear() == 2);
  CHECK_FALSE(cache.find(key2, blobs));
}
