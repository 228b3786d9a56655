// Small images written straight into a store for registry tests: uncompressed "layers" of
// deterministic pseudo-random bytes (registries and skopeo copy never look inside them), an OCI
// config naming them as diff_ids, and an OCI manifest; optionally an index over several.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/descriptor.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/store.h"

namespace cbuild::test {

inline std::string pseudo_random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

// Writes the blobs and returns the manifest's descriptor (not tagged).
inline oci::Descriptor make_test_image(oci::Store& store, const std::vector<std::size_t>& layer_sizes,
                                       std::uint32_t seed, const std::string& arch = "amd64") {
  oci::Manifest m;
  m.media_type = std::string(oci::media_types::kOciManifest);
  nlohmann::json diff_ids = nlohmann::json::array();
  for (std::size_t i = 0; i < layer_sizes.size(); ++i) {
    std::string bytes = pseudo_random_bytes(layer_sizes[i], seed * 131 + static_cast<std::uint32_t>(i));
    oci::Descriptor l;
    l.media_type = std::string(oci::media_types::kOciLayer);
    l.digest = store.put_blob(bytes);
    l.size = static_cast<std::int64_t>(bytes.size());
    diff_ids.push_back(l.digest.str());
    m.layers.push_back(l);
  }
  nlohmann::json cfg = {{"architecture", arch},
                        {"os", "linux"},
                        {"config", {{"Cmd", {"/bin/true"}}, {"Labels", {{"seed", std::to_string(seed)}}}}},
                        {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  std::string cfg_bytes = cfg.dump();
  m.config.media_type = std::string(oci::media_types::kOciConfig);
  m.config.digest = store.put_blob(cfg_bytes);
  m.config.size = static_cast<std::int64_t>(cfg_bytes.size());
  std::string mb = m.to_json();
  oci::Descriptor d;
  d.media_type = m.media_type;
  d.digest = store.put_blob(mb);
  d.size = static_cast<std::int64_t>(mb.size());
  return d;
}

// An OCI index over per-architecture images (blobs written, not tagged).
inline oci::Descriptor make_test_index(oci::Store& store, const std::vector<std::string>& archs, std::uint32_t seed) {
  oci::Index idx;
  idx.media_type = std::string(oci::media_types::kOciIndex);
  std::uint32_t s = seed;
  for (const auto& a : archs) {
    auto d = make_test_image(store, {1000 + s % 977, 20000}, s++, a);
    d.platform = oci::Platform{};
    d.platform->os = "linux";
    d.platform->architecture = a;
    idx.manifests.push_back(d);
  }
  std::string b = idx.to_json();
  oci::Descriptor d;
  d.media_type = idx.media_type;
  d.digest = store.put_blob(b);
  d.size = static_cast<std::int64_t>(b.size());
  return d;
}

}  // namespace cbuild::test
