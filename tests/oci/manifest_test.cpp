#include <doctest/doctest.h>

#include <string>

#include "oci/base/error.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {
const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');

std::string manifest_json(std::string mt_line, std::string config, std::string layers) {
  return "{\"schemaVersion\":2," + mt_line + "\"config\":" + config + ",\"layers\":" + layers + "}";
}
const std::string kCfg = R"({"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + kA + R"(","size":7})";
const std::string kLayer = R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + kB + R"(","size":32})";

std::string error_of(auto fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("media type helpers") {
  namespace mt = media_types;
  CHECK(mt::is_manifest(mt::kOciManifest));
  CHECK(mt::is_manifest(mt::kDockerManifest));
  CHECK(!mt::is_manifest(mt::kOciIndex));
  CHECK(mt::is_index(mt::kDockerManifestList));
  CHECK(mt::is_config(mt::kDockerConfig));
  CHECK(mt::is_layer(mt::kDockerLayerGzip));
  CHECK(!mt::is_layer(mt::kOciConfig));
  CHECK(mt::layer_compression(mt::kDockerLayerGzip) == mt::LayerCompression::Gzip);
  CHECK(mt::layer_compression(mt::kOciLayerZstd) == mt::LayerCompression::Zstd);
  CHECK(mt::layer_compression(mt::kOciLayer) == mt::LayerCompression::None);
  CHECK_THROWS_AS(mt::layer_compression("text/plain"), Error);
  CHECK(mt::oci_layer_type(mt::LayerCompression::Gzip) == mt::kOciLayerGzip);
  CHECK(mt::is_nondistributable_layer(mt::kDockerForeignLayerGzip));
  CHECK(mt::is_well_formed("application/vnd.x+json"));
  CHECK(!mt::is_well_formed("application"));
  CHECK(!mt::is_well_formed("application/"));
  CHECK(!mt::is_well_formed("a/b c"));
  CHECK(!mt::is_well_formed("a/" + std::string(128, 'b')));
}

TEST_CASE("manifest parse and write round trip") {
  auto doc = manifest_json(R"("mediaType":"application/vnd.oci.image.manifest.v1+json",)", kCfg, "[" + kLayer + "]");
  Manifest m = Manifest::parse(doc, "manifest x", media_types::kOciManifest);
  CHECK(m.config.digest.str() == kA);
  CHECK(m.config.size == 7);
  REQUIRE(m.layers.size() == 1);
  CHECK(m.layers[0].media_type == media_types::kOciLayerGzip);
  CHECK(!m.is_docker());
  Manifest again = Manifest::parse(m.to_json());
  CHECK(again.config == m.config);
  CHECK(again.layers == m.layers);
  CHECK(sniff_media_type(doc) == media_types::kOciManifest);
  // An OCI manifest may omit mediaType.
  auto bare = manifest_json("", kCfg, "[]");
  CHECK(Manifest::parse(bare, "m", media_types::kOciManifest).media_type.empty());
  CHECK(sniff_media_type(bare) == media_types::kOciManifest);
}

TEST_CASE("malformed manifests name the document and the field") {
  auto mt = std::string(R"("mediaType":"application/vnd.oci.image.manifest.v1+json",)");
  CHECK(error_of([] { Manifest::parse("not json", "manifest m1"); }).find("manifest m1: not valid JSON") == 0);
  CHECK(error_of([] { Manifest::parse("[]", "m"); }).find("not a JSON object") != std::string::npos);
  CHECK(error_of([&] { Manifest::parse(R"({"schemaVersion":1,"config":)" + kCfg + R"(,"layers":[]})", "m"); })
            .find("\"schemaVersion\"") != std::string::npos);
  CHECK(error_of([&] { Manifest::parse(R"({"schemaVersion":2,"layers":[]})", "m"); }).find("\"config\" is missing") != std::string::npos);
  CHECK(error_of([&] { Manifest::parse(R"({"schemaVersion":2,"config":)" + kCfg + "}", "m"); }).find("\"layers\" is missing") != std::string::npos);
  // Wrong media type for a manifest, and a mismatch with the descriptor.
  auto idx_mt = std::string(R"("mediaType":"application/vnd.oci.image.index.v1+json",)");
  CHECK(error_of([&] { Manifest::parse(manifest_json(idx_mt, kCfg, "[]"), "m"); }).find("not an image manifest type") != std::string::npos);
  CHECK(error_of([&] { Manifest::parse(manifest_json(mt, kCfg, "[]"), "m", media_types::kDockerManifest); })
            .find("descriptor says") != std::string::npos);
  // Bad digest in a layer names the layer.
  std::string bad_layer = R"([{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:xyz","size":1}])";
  auto msg = error_of([&] { Manifest::parse(manifest_json(mt, kCfg, bad_layer), "manifest q"); });
  CHECK(msg.find("layers[0]") != std::string::npos);
  std::string neg = R"([{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + kB + R"(","size":-1}])";
  CHECK(error_of([&] { Manifest::parse(manifest_json(mt, kCfg, neg), "m"); }).find("\"size\"") != std::string::npos);
  std::string no_digest = R"({"mediaType":"application/vnd.oci.image.config.v1+json","size":2})";
  CHECK(error_of([&] { Manifest::parse(manifest_json(mt, no_digest, "[]"), "m"); }).find("\"digest\" is missing") != std::string::npos);
  CHECK(error_of([&] { Manifest::parse(R"({"schemaVersion":2,"config":)" + kCfg + R"(,"layers":[],"annotations":{"a":1}})", "m"); })
            .find("annotations.a") != std::string::npos);
}

TEST_CASE("index parse and write") {
  std::string doc = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                    kA + R"(","size":10,"platform":{"architecture":"arm64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"x"}}]})";
  Index x = Index::parse(doc, "index", media_types::kOciIndex);
  REQUIRE(x.manifests.size() == 1);
  REQUIRE(x.manifests[0].platform);
  CHECK(x.manifests[0].platform->architecture == "arm64");
  CHECK(Index::parse(x.to_json()).manifests == x.manifests);
  CHECK(sniff_media_type(doc) == media_types::kOciIndex);
  CHECK(error_of([] { Index::parse(R"({"schemaVersion":2})", "index i"); }).find("\"manifests\" is missing") != std::string::npos);
  CHECK(error_of([&] { Index::parse(manifest_json("", kCfg, "[]"), "index i"); }).find("\"config\" must not appear") != std::string::npos);
  CHECK(error_of([&] { Index::parse(doc, "i", media_types::kDockerManifestList); }).find("descriptor says") != std::string::npos);
}

TEST_CASE("verify_blob_bytes checks size then digest") {
  Descriptor d{.media_type = std::string(media_types::kOciConfig), .digest = Digest::of("{}"), .size = 2};
  CHECK_NOTHROW(verify_blob_bytes(d, "{}", "config"));
  try {
    verify_blob_bytes(d, "{ }", "config");
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("size") != std::string::npos);
  }
  try {
    verify_blob_bytes(d, "[]", "config");
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("digest") != std::string::npos);
  }
}
