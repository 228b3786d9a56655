#include "tests/support/store_image.h"

#include <nlohmann/json.hpp>

#include "oci/image_config.h"
#include "oci/layer_writer.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace cbuild::test {

oci::Descriptor put_rootfs_image(oci::Store& store, const std::filesystem::path& rootfs, const std::string& name) {
  oci::LayerResult layer = oci::write_layer(rootfs, store);
  nlohmann::json config = {
      {"architecture", oci::Platform::host().architecture},
      {"os", "linux"},
      {"created", "1970-01-01T00:00:00Z"},
      {"config", nlohmann::json::object()},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.diff_id.str()}}}},
      {"history", {{{"created", "1970-01-01T00:00:00Z"}, {"created_by", "cbuild test busybox rootfs"}}}}};
  std::string config_bytes = oci::ImageConfig::parse(config.dump()).to_json();
  oci::Manifest m;
  m.media_type = std::string(oci::media_types::kOciManifest);
  m.config = oci::Descriptor{.media_type = std::string(oci::media_types::kOciConfig),
                             .digest = store.put_blob(config_bytes),
                             .size = static_cast<std::int64_t>(config_bytes.size())};
  m.layers.push_back(layer.descriptor);
  std::string manifest_bytes = m.to_json();
  oci::Descriptor d{.media_type = m.media_type,
                    .digest = store.put_blob(manifest_bytes),
                    .size = static_cast<std::int64_t>(manifest_bytes.size())};
  store.set_tag(name, d);
  return d;
}

}  // namespace cbuild::test
