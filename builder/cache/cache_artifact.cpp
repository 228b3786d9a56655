#include "builder/cache/cache_artifact.h"

#include <set>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/media_types.h"

namespace cbuild::builder {

using nlohmann::json;

namespace {

std::string compression_name(const oci::Descriptor& layer) {
  switch (oci::layer_compression(layer.media_type)) {
    case oci::LayerCompression::Gzip: return "gzip";
    case oci::LayerCompression::Zstd: return "zstd";
    case oci::LayerCompression::None: return "uncompressed";
  }
  return "uncompressed";
}

oci::Descriptor describe(std::string_view media_type, std::string_view bytes) {
  oci::Descriptor d;
  d.media_type = std::string(media_type);
  d.digest = oci::Digest::of(bytes);
  d.size = static_cast<std::int64_t>(bytes.size());
  return d;
}

Error corrupt(const std::string& why) { return Error(ErrorKind::DataLoss, "corrupt cache record: " + why); }

}  // namespace

CacheArtifact make_cache_artifact(const std::vector<CacheEntry>& entries) {
  CacheArtifact a;
  json records = json::array();
  std::set<oci::Digest> seen;
  for (const auto& e : entries) {
    json r{{"key", e.key.str()}, {"parent", e.parent}, {"config", e.record.config_json}};
    if (e.record.layer && e.record.diff_id) {
      r["layer"] = oci::to_json(*e.record.layer);
      r["diff_id"] = e.record.diff_id->str();
      r["compression"] = compression_name(*e.record.layer);
      if (seen.insert(e.record.layer->digest).second) a.layers.push_back(*e.record.layer);
    } else {
      r["layer"] = nullptr;
    }
    records.push_back(std::move(r));
  }
  a.config = json{{"version", kCacheFormatVersion}, {"records", std::move(records)}}.dump();
  a.config_desc = describe(kCacheConfigType, a.config);
  oci::Manifest m;
  m.media_type = std::string(oci::kOciManifest);
  m.artifact_type = std::string(kCacheArtifactType);
  m.config = a.config_desc;
  m.layers = a.layers;
  a.manifest = m.to_json();
  a.manifest_desc = describe(oci::kOciManifest, a.manifest);
  a.manifest_desc.artifact_type = std::string(kCacheArtifactType);
  return a;
}

oci::Manifest parse_cache_manifest(std::string_view bytes) {
  oci::Manifest m = oci::Manifest::parse(bytes, "cache manifest");
  if (m.artifact_type != kCacheArtifactType || m.config.media_type != kCacheConfigType)
    throw Error(ErrorKind::InvalidArgument, "not a cbuild cache (artifactType " + quote(m.artifact_type) +
                                                ", config " + quote(m.config.media_type) + ")");
  return m;
}

std::map<std::string, CacheRecord> parse_cache_config(std::string_view bytes) {
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("version") || !j["version"].is_number_integer() || !j.contains("records") ||
      !j["records"].is_array())
    throw corrupt("the config blob is not a cache record document");
  auto version = j["version"].get<std::int64_t>();
  if (version > kCacheFormatVersion)
    throw Error(ErrorKind::FailedPrecondition, "format version " + std::to_string(version) +
                                                   " is newer than this cbuild reads (" +
                                                   std::to_string(kCacheFormatVersion) + ")");
  if (version < 1) throw corrupt("format version " + std::to_string(version));
  std::map<std::string, CacheRecord> out;
  for (const auto& r : j["records"]) {
    try {
      CacheRecord rec;
      auto key = oci::Digest::parse(r.at("key").get<std::string>());
      rec.config_json = r.at("config").get<std::string>();
      json config = json::parse(rec.config_json);
      if (!config.is_object()) throw corrupt("the config of " + key.str() + " is not an object");
      if (r.contains("layer") && !r["layer"].is_null()) {
        rec.layer = oci::descriptor_from_json(r["layer"], "cache record layer");
        if (!oci::is_layer(rec.layer->media_type)) throw corrupt(key.str() + " names a layer of type " + quote(rec.layer->media_type));
        rec.diff_id = oci::Digest::parse(r.at("diff_id").get<std::string>());
        // The config after the step ends in the layer the step added.
        const json& ids = config.at("rootfs").at("diff_ids");
        if (!ids.is_array() || ids.empty() || ids.back() != rec.diff_id->str())
          throw corrupt("the config of " + key.str() + " does not end in its layer's DiffID");
      }
      out[key.str()] = std::move(rec);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw corrupt(e.what());
    }
  }
  return out;
}

}  // namespace cbuild::builder
