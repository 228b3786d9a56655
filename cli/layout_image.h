// LayoutImage — one image of an OCI image layout, for `cbuild unpack`, `run` and `mount`.
// cbuild's store *is* an OCI layout (oci::LayoutStore), so an IMAGE argument resolves in the
// store root; "oci:DIR[:REF]" reads any other layout (what skopeo and umoci write).
//
// Resolution: a reference normalized by registry::Reference ("busybox" →
// "docker.io/library/busybox:latest") looked up as a tag, or a manifest digest ("sha256:…");
// with "oci:DIR" and no REF, the layout's only image. An image index picks the manifest of the
// platform asked for (the host's when none) by oci::resolve_image's rule, the one FROM and
// `inspect` use; a platform asked for must be the image's. Every document and layer is read through the store's verified reads.
// Throws cbuild::Error (NotFound naming the reference, DataLoss for a corrupt blob).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/layout_store.h"
#include "oci/tar_reader.h"
#include "overlay/runtime_bundle.h"
#include "overlay/snapshot_store.h"

namespace cbuild::cli {

struct LayoutImage {
  std::shared_ptr<oci::LayoutStore> store;
  std::string name;  // the matched reference (or digest)
  oci::Digest manifest_digest;
  oci::Digest config_digest;
  std::vector<oci::Descriptor> layers;
  std::vector<oci::Digest> diff_ids;
  overlay::ImageRuntimeInfo runtime;

  // A reader over layer i, verified against its descriptor and its uncompressed content
  // against diff_ids[i] (DataLoss at the end on either mismatch).
  std::unique_ptr<oci::TarReader> open_layer(std::size_t i) const;
};

LayoutImage open_layout_image(const std::filesystem::path& layout, std::string_view ref,
                              const std::optional<oci::Platform>& platform = std::nullopt);
// "oci:DIR[:REF]" or an IMAGE in the store at `store_root`; the store's lazily held layers are
// fetched from their recorded registries when read (registry-client/origin_fetcher.h).
LayoutImage open_image_arg(std::string_view arg, const std::string& store_root, bool tls_verify,
                           const std::optional<oci::Platform>& platform = std::nullopt);

// Makes sure every layer of `image` has its snapshot, as a build does (builder::ensure_snapshots:
// a layer is applied only if it decompresses to its diff_id). Returns the top chain ID,
// nullopt for an image without layers.
std::optional<oci::Digest> ensure_snapshots(overlay::SnapshotStore& snapshots, const LayoutImage& image);
// A writable stack over the image's snapshots (builder::lock_snapshots: one a concurrent
// prune removes before it is locked is made again).
overlay::PreparedSnapshot prepare_image(overlay::SnapshotStore& snapshots, const LayoutImage& image);

}  // namespace cbuild::cli
