#include "builder/base_image.h"

#include "oci/base/error.h"
#include "oci/image_resolver.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "registry-client/connect.h"
#include "registry-client/puller.h"
#include "registry-client/reference.h"

namespace cbuild::builder {

using nlohmann::json;

std::optional<ImageState> load_local_image(const oci::Store& store, const std::string& ref, const std::string& platform,
                                           oci::Lease* lease) {
  registry::Reference r = registry::Reference::parse(ref);
  std::optional<oci::Descriptor> top = store.resolve(r.str());
  if (!top && r.digest()) {
    // "name@sha256:…" also names a manifest the store holds without that exact tag.
    if (store.stat(*r.digest())) top = oci::Descriptor{.media_type = "", .digest = *r.digest(), .size = *store.stat(*r.digest())};
  }
  if (!top) return std::nullopt;
  // Leased before it is read: gc keeps a leased blob and all it reaches. A top blob gone by
  // now was removed (rmi) between the lookup and the lease: the image is not here.
  if (lease && !lease->add(top->digest)) return std::nullopt;
  oci::ResolveOptions ro;
  if (!platform.empty()) ro.platform = oci::Platform::parse(platform);
  ro.what = "image " + r.familiar();
  ro.hold = [&](const oci::Digest& d) {
    // Whether the blob is here now does not matter: a missing one is reported by its reader.
    if (lease) lease->add(d);
  };
  oci::ResolvedImage img = oci::resolve_image(store, *top, ro);
  const std::string& what = ro.what;
  const oci::Manifest& m = img.manifest;
  ImageState st;
  st.config = json::parse(img.config_bytes, nullptr, false);
  if (!st.config.is_object()) throw Error(ErrorKind::InvalidArgument, what + ": the image config is not a JSON object");
  const json& ids = st.config["rootfs"]["diff_ids"];
  if (!ids.is_array() || ids.size() != m.layers.size())
    throw Error(ErrorKind::InvalidArgument, what + ": the config lists " + std::to_string(ids.is_array() ? ids.size() : 0) +
                                                " diff_ids for " + std::to_string(m.layers.size()) + " layers");
  st.stack.layers = m.layers;
  for (const auto& d : ids) st.stack.diff_ids.push_back(oci::Digest::parse(d.get<std::string>()));
  // Keyed by the config (the image ID), never the manifest: the same image pulled, pulled by
  // digest of another manifest, or loaded from a docker archive (whose layers the store keeps
  // uncompressed) has other manifest and layer digests, yet the config pins every DiffID.
  st.cache_key = "image:" + m.config.digest.str();
  return st;
}

ImageState load_image(oci::Store& store, const std::string& ref, const std::string& platform, const BuildOptions& options,
                      Progress& progress, oci::Lease* lease, const oci::DiffIdRecords* diff_ids,
                      const registry::BlobOrigins* origins) {
  if (!options.pull)
    if (auto st = load_local_image(store, ref, platform, lease)) return *st;
  registry::Reference r = registry::Reference::parse(ref);
  progress.note("pulling " + r.familiar());
  try {
    auto transport = registry::connect(r, options.tls_verify);
    registry::PullOptions po;
    if (!platform.empty()) po.platform = oci::Platform::parse(platform);
    po.log = [&progress](const std::string& line) { progress.note(line); };
    po.diff_ids = diff_ids;
    po.origins = origins;
    po.lazy_layers = origins != nullptr;
    registry::Puller(*transport, store, po).pull(r);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Cancelled) throw;
    throw Error(e.kind(), "image " + quote(r.familiar()) + " is not in the local store, and pulling it failed: " + e.what());
  }
  if (auto st = load_local_image(store, ref, platform, lease)) return *st;
  throw Error(ErrorKind::NotFound, "image " + quote(r.familiar()) + " not found after pulling it");
}

}  // namespace cbuild::builder
