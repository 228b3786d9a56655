#include "builder/export/image_writer.h"

#include "builder/dockerfile/valid_utf8.h"
#include "oci/compression.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace cbuild::builder {

namespace {

// A layer's media type in the chosen format. Docker schema 2 has no zstd type, so zstd layers
// keep the OCI one (as BuildKit does).
std::string layer_type(const oci::Descriptor& d, ImageFormat format) {
  auto codec = oci::codec_from_media_type(d.media_type);
  if (!codec) return d.media_type;  // a foreign or nondistributable layer from a base image
  if (format == ImageFormat::Docker) {
    if (*codec == oci::Codec::Gzip) return std::string(oci::media_types::kDockerLayerGzip);
    if (*codec == oci::Codec::None) return std::string(oci::media_types::kDockerLayer);
    return std::string(oci::media_types::kOciLayerZstd);
  }
  return std::string(oci::oci_layer_media_type(*codec));
}

}  // namespace

WrittenImage write_image(oci::Ingester& store, const ImageState& state, ImageFormat format) {
  WrittenImage w;
  // Parse-and-write validates every field and keeps keys ImageConfig does not model.
  w.config_bytes = oci::ImageConfig::parse(with_valid_utf8(state.config).dump(), "built image config").to_json();
  if (format == ImageFormat::Docker) {
    // docker writes "OnBuild": null in every image without triggers (ImageConfig drops it).
    nlohmann::json j = nlohmann::json::parse(w.config_bytes);
    if (j.contains("config") && j["config"].is_object() && !j["config"].contains("OnBuild")) {
      j["config"]["OnBuild"] = nullptr;
      w.config_bytes = j.dump();
    }
  }
  w.config = store.put_blob(w.config_bytes);
  oci::Manifest m;
  m.media_type = std::string(format == ImageFormat::Docker ? oci::media_types::kDockerManifest : oci::media_types::kOciManifest);
  m.config = oci::Descriptor{
      .media_type = std::string(format == ImageFormat::Docker ? oci::media_types::kDockerConfig : oci::media_types::kOciConfig),
      .digest = w.config,
      .size = static_cast<std::int64_t>(w.config_bytes.size())};
  for (const auto& l : state.stack.layers) {
    oci::Descriptor d = l;
    d.media_type = layer_type(l, format);
    if (format == ImageFormat::Docker) d.annotations.clear();  // schema 2 has no annotations
    m.layers.push_back(std::move(d));
  }
  w.manifest_bytes = m.to_json();
  oci::Digest md = store.put_blob(w.manifest_bytes);
  w.manifest = oci::Descriptor{.media_type = m.media_type,
                               .digest = md,
                               .size = static_cast<std::int64_t>(w.manifest_bytes.size())};
  return w;
}

}  // namespace cbuild::builder
