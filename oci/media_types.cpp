#include "oci/media_types.h"

#include "oci/base/error.h"

namespace cbuild::oci {
// Inline: the constants are reachable as oci::kOciManifest and as oci::media_types::kOciManifest.
inline namespace media_types {

bool is_manifest(std::string_view mt) noexcept { return mt == kOciManifest || mt == kDockerManifest; }
bool is_index(std::string_view mt) noexcept { return mt == kOciIndex || mt == kDockerManifestList; }
bool is_config(std::string_view mt) noexcept { return mt == kOciConfig || mt == kDockerConfig; }

bool is_nondistributable_layer(std::string_view mt) noexcept {
  return mt == kOciLayerNondistributable || mt == kOciLayerNondistributableGzip ||
         mt == kOciLayerNondistributableZstd || mt == kDockerForeignLayerGzip;
}

bool is_layer(std::string_view mt) noexcept {
  return mt == kOciLayer || mt == kOciLayerGzip || mt == kOciLayerZstd || mt == kDockerLayerGzip ||
         mt == kDockerLayer || is_nondistributable_layer(mt);
}

LayerCompression layer_compression(std::string_view mt) {
  if (!is_layer(mt)) throw Error(ErrorKind::InvalidArgument, "media type " + quote(mt) + " is not a layer type");
  if (mt.ends_with("+gzip") || mt.ends_with(".gzip")) return LayerCompression::Gzip;
  if (mt.ends_with("+zstd")) return LayerCompression::Zstd;
  return LayerCompression::None;
}

std::string_view oci_layer_type(LayerCompression c) noexcept {
  switch (c) {
    case LayerCompression::Gzip: return kOciLayerGzip;
    case LayerCompression::Zstd: return kOciLayerZstd;
    case LayerCompression::None: break;
  }
  return kOciLayer;
}

std::string_view docker_layer_type(LayerCompression c) noexcept {
  switch (c) {
    case LayerCompression::Gzip: return kDockerLayerGzip;
    case LayerCompression::Zstd: return kOciLayerZstd;
    case LayerCompression::None: break;
  }
  return kDockerLayer;
}

bool is_well_formed(std::string_view mt) noexcept {
  auto ok_part = [](std::string_view p) {
    if (p.empty() || p.size() > 127) return false;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
    if (!alnum(p[0])) return false;
    for (char c : p)
      if (!alnum(c) && std::string_view("!#$&-^_.+").find(c) == std::string_view::npos) return false;
    return true;
  };
  auto slash = mt.find('/');
  if (slash == std::string_view::npos) return false;
  return ok_part(mt.substr(0, slash)) && ok_part(mt.substr(slash + 1));
}

}  // namespace media_types
}  // namespace cbuild::oci
