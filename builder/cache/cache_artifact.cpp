#include "builder/cache/cache_artifact.h"

#include <algorithm>
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

namespace {

// The records document (the artifact's config blob, and the inline field's value). `layers`
// collects the distinct layers in record order.
json records_document(const std::vector<CacheEntry>& entries, std::vector<oci::Descriptor>* layers) {
  json records = json::array();
  std::set<oci::Digest> seen;
  for (const auto& e : entries) {
    json r{{"key", e.key.str()}, {"parent", e.parent}, {"config", e.record.config_json}};
    if (e.record.layer && e.record.diff_id) {
      r["layer"] = oci::to_json(*e.record.layer);
      r["diff_id"] = e.record.diff_id->str();
      r["compression"] = compression_name(*e.record.layer);
      if (seen.insert(e.record.layer->digest).second && layers) layers->push_back(*e.record.layer);
    } else {
      r["layer"] = nullptr;
    }
    records.push_back(std::move(r));
  }
  return json{{"version", kCacheFormatVersion}, {"records", std::move(records)}};
}

}  // namespace

CacheArtifact make_cache_artifact(const std::vector<CacheEntry>& entries) {
  CacheArtifact a;
  a.config = records_document(entries, &a.layers).dump();
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

std::string make_inline_cache(std::vector<CacheEntry> entries, const std::vector<oci::Descriptor>& image_layers) {
  std::set<oci::Digest> own;
  for (const auto& l : image_layers) own.insert(l.digest);
  std::erase_if(entries, [&](const CacheEntry& e) { return e.record.layer && !own.count(e.record.layer->digest); });
  // By key, not by the order steps were noted: parallel stages note in any order, and the same
  // inputs must give the same image.
  std::sort(entries.begin(), entries.end(), [](const CacheEntry& a, const CacheEntry& b) { return a.key.str() < b.key.str(); });
  return records_document(entries, nullptr).dump();
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

std::map<std::string, CacheRecord> parse_inline_cache(std::string_view config_bytes,
                                                      const std::vector<oci::Descriptor>& image_layers) {
  json config = json::parse(config_bytes, nullptr, /*allow_exceptions=*/false);
  if (!config.is_object()) throw corrupt("the image config is not a JSON object");
  auto it = config.find(std::string(kInlineCacheKey));
  if (it == config.end())
    throw Error(ErrorKind::NotFound, "neither a cbuild cache nor an image with one (its config has no " +
                                         quote(kInlineCacheKey) + "; build it with --cache-to type=inline)");
  if (!it->is_object()) throw corrupt(std::string(kInlineCacheKey) + " is not an object");
  auto records = parse_cache_config(it->dump());
  std::set<oci::Digest> own;
  for (const auto& l : image_layers) own.insert(l.digest);
  // The image's blobs are all an inline cache may name: a registry keeps them for the image.
  for (const auto& [key, r] : records)
    if (r.layer && !own.count(r.layer->digest))
      throw corrupt(key + " names layer " + r.layer->digest.str() + ", which is not one of the image's");
  return records;
}

}  // namespace cbuild::builder
