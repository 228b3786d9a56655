// LayoutImage — one image read from an OCI image layout directory, for `cbuild unpack`, `run`
// and `mount`. cbuild's store *is* an OCI layout, so an IMAGE argument resolves in the store
// root; "oci:DIR[:REF]" reads any other layout (what skopeo and umoci write).
//
// Stopgap: this reads the layout directly (index.json → manifest → config, every blob
// verified against its digest) until oci::LayoutStore and registry::Reference land; then
// open_image_arg() should resolve through them and this file shrink to the conversion.
// Reference matching is docker's short-name normalization ("busybox" →
// "docker.io/library/busybox:latest") against org.opencontainers.image.ref.name; a manifest
// digest ("sha256:…") also works. An image index picks the host platform's manifest.
// Throws cbuild::Error (NotFound naming the reference, DataLoss for a corrupt blob).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/tar_reader.h"
#include "overlay/runtime_bundle.h"
#include "overlay/snapshot_store.h"

namespace cbuild::cli {

struct LayoutImage {
  std::filesystem::path layout;
  std::string name;  // the matched reference (or digest)
  oci::Digest manifest_digest;
  oci::Digest config_digest;
  std::vector<oci::Descriptor> layers;
  std::vector<oci::Digest> diff_ids;
  overlay::ImageRuntimeInfo runtime;

  // A reader over layer i, verified against its descriptor (DataLoss at the end on mismatch).
  std::unique_ptr<oci::TarReader> open_layer(std::size_t i) const;
};

// Docker's normalization of a short reference (no validation beyond what matching needs).
std::string normalize_reference(std::string_view ref);

LayoutImage open_layout_image(const std::filesystem::path& layout, std::string_view ref);
// "oci:DIR[:REF]" or an IMAGE in the store at `store_root`.
LayoutImage open_image_arg(std::string_view arg, const std::string& store_root);

// Makes sure every layer of `image` has its snapshot (applied from the verified blob when
// missing). Returns the top chain ID, nullopt for an image without layers.
std::optional<oci::Digest> ensure_snapshots(overlay::SnapshotStore& snapshots, const LayoutImage& image);

}  // namespace cbuild::cli
