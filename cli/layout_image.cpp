#include "cli/layout_image.h"

#include "builder/steps/fs_step.h"
#include "oci/base/error.h"
#include "oci/image_resolver.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "registry-client/origin_fetcher.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

namespace fs = std::filesystem;

std::optional<oci::Descriptor> find_entry(const oci::LayoutStore& store, std::string_view ref, std::string& name) {
  if (ref.empty()) {
    auto entries = store.index_entries();
    if (entries.size() != 1) return std::nullopt;
    name = entries.front().digest.str();
    return entries.front();
  }
  if (auto digest = oci::Digest::try_parse(ref)) {
    for (const auto& e : store.index_entries())
      if (e.digest == *digest) {
        name = digest->str();
        return e;
      }
    return std::nullopt;
  }
  // As written (an oci: layout may use short names like "latest"), then docker-normalized.
  if (auto d = store.resolve(ref)) {
    name = std::string(ref);
    return d;
  }
  name = registry::Reference::parse(ref).str();
  return store.resolve(name);
}

}  // namespace

std::unique_ptr<oci::TarReader> LayoutImage::open_layer(std::size_t i) const {
  const oci::Descriptor& d = layers.at(i);
  return std::make_unique<oci::TarReader>(store->open(d.digest), "layer " + d.digest.str() + " of " + quote(name),
                                          diff_ids.at(i));
}

LayoutImage open_layout_image(const fs::path& layout, std::string_view ref, const std::optional<oci::Platform>& platform) {
  if (!fs::exists(layout / "index.json"))
    throw Error(ErrorKind::NotFound, quote(layout.string()) + " is not an OCI image layout (no index.json)");
  LayoutImage img;
  img.store = oci::LayoutStore::open(layout);
  auto entry = find_entry(*img.store, ref, img.name);
  if (!entry)
    throw Error(ErrorKind::NotFound, "image " + quote(ref.empty() ? layout.string() : std::string(ref)) +
                                         " not found in " + quote(layout.string()));
  oci::ResolveOptions ro;
  ro.platform = platform;
  auto shown = ref.empty() ? std::nullopt : registry::Reference::try_parse(ref);
  ro.what = "image " + (shown ? shown->familiar() : img.name);
  oci::ResolvedImage r = oci::resolve_image(*img.store, *entry, ro);
  img.manifest_digest = r.manifest_desc.digest;
  img.config_digest = r.manifest.config.digest;
  img.layers = r.manifest.layers;
  oci::ImageConfig config = oci::ImageConfig::parse(r.config_bytes, "image config " + img.config_digest.str());
  img.diff_ids = config.rootfs.diff_ids;
  if (img.diff_ids.size() != img.layers.size())
    throw Error(ErrorKind::InvalidArgument, "image config " + img.config_digest.str() + " has " +
                                                std::to_string(img.diff_ids.size()) + " diff_ids for " +
                                                std::to_string(img.layers.size()) + " layers");
  const oci::ContainerConfig& c = config.config;
  img.runtime.env = c.env;
  img.runtime.entrypoint = c.entrypoint.value_or(std::vector<std::string>{});
  img.runtime.cmd = c.cmd.value_or(std::vector<std::string>{});
  img.runtime.working_dir = c.working_dir;
  img.runtime.user = c.user;
  img.runtime.labels = c.labels;
  return img;
}

LayoutImage open_image_arg(std::string_view arg, const std::string& store_root, bool tls_verify,
                           const std::optional<oci::Platform>& platform) {
  if (arg.rfind("oci:", 0) == 0) {
    std::string rest(arg.substr(4));
    // "oci:DIR:REF" — the first ':' splits only when the part before it is a layout.
    std::size_t colon = rest.find(':');
    if (colon != std::string::npos && fs::exists(fs::path(rest.substr(0, colon)) / "index.json"))
      return open_layout_image(rest.substr(0, colon), rest.substr(colon + 1), platform);
    return open_layout_image(rest, "", platform);
  }
  if (!fs::exists(fs::path(store_root) / "index.json"))
    throw Error(ErrorKind::NotFound, "image " + quote(arg) + " not found: the store " + quote(store_root) + " is empty");
  LayoutImage img = open_layout_image(store_root, arg, platform);
  img.store->set_blob_fetcher(registry::origin_fetcher(*img.store, tls_verify));
  return img;
}

namespace {

builder::LayerStack stack_of(const LayoutImage& image) { return {.layers = image.layers, .diff_ids = image.diff_ids}; }

}  // namespace

std::optional<oci::Digest> ensure_snapshots(overlay::SnapshotStore& snapshots, const LayoutImage& image) {
  builder::FsContext ctx{.store = *image.store, .snapshots = snapshots, .layer_options = {}};
  return builder::ensure_snapshots(ctx, stack_of(image));
}

overlay::PreparedSnapshot prepare_image(overlay::SnapshotStore& snapshots, const LayoutImage& image) {
  builder::FsContext ctx{.store = *image.store, .snapshots = snapshots, .layer_options = {}};
  std::optional<overlay::PreparedSnapshot> prepared;
  builder::lock_snapshots(ctx, stack_of(image),
                          [&](const std::optional<oci::Digest>& top) { prepared.emplace(snapshots.prepare(top)); });
  return std::move(*prepared);
}

}  // namespace cbuild::cli
