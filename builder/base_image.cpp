#include "builder/base_image.h"

#include "oci/base/error.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "registry-client/connect.h"
#include "registry-client/puller.h"
#include "registry-client/reference.h"

namespace cbuild::builder {

using nlohmann::json;

namespace {

// An image asked for by platform must be of it: a single-platform image of another one (the
// store keeps one platform of a pulled index) would give a config claiming a platform its
// files are not for.
void check_platform(const json& config, const oci::Platform& want, const std::string& what) {
  auto field = [&](const char* key) {
    auto it = config.find(key);
    return it != config.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  oci::Platform have;
  have.os = field("os");
  have.architecture = field("architecture");
  have.variant = field("variant");
  if (registry::platform_matches(want, have)) return;
  throw Error(ErrorKind::NotFound,
              what + " is for " + (have.architecture.empty() ? std::string("an unknown platform") : have.str()) +
                  ", not the requested " + want.str() +
                  " (the store holds that one platform of it; `cbuild pull --all-platforms` keeps them all)");
}

}  // namespace

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
  auto hold = [&](const oci::Digest& d) {
    if (lease) (void)lease->add(d);  // a missing blob is reported by whoever reads it
  };
  std::string what = "image " + r.familiar();
  std::string bytes = store.read_blob(top->digest);
  std::string mt = top->media_type.empty() ? oci::sniff_media_type(bytes, what) : top->media_type;
  if (oci::media_types::is_index(mt)) {
    oci::Index index = oci::Index::parse(bytes, what + " index", mt);
    oci::Platform want = platform.empty() ? oci::Platform::host() : oci::Platform::parse(platform);
    const oci::Descriptor* pick = nullptr;
    for (const auto& m : index.manifests)
      if (registry::platform_matches(want, m.platform)) {
        pick = &m;
        break;
      }
    if (!pick) {
      std::string have;
      for (const auto& m : index.manifests)
        if (m.platform) have += (have.empty() ? "" : ", ") + m.platform->str();
      throw Error(ErrorKind::NotFound, what + ": no manifest for platform " + want.str() + " (the index has: " +
                                           (have.empty() ? "none" : have) + ")");
    }
    hold(pick->digest);
    bytes = store.read_blob(pick->digest);
    mt = pick->media_type;
  }
  oci::Manifest m = oci::Manifest::parse(bytes, what + " manifest", mt);
  hold(m.config.digest);
  for (const auto& l : m.layers) hold(l.digest);
  std::string config_bytes = store.read_blob(m.config.digest);
  ImageState st;
  st.config = json::parse(config_bytes, nullptr, false);
  if (!st.config.is_object()) throw Error(ErrorKind::InvalidArgument, what + ": the image config is not a JSON object");
  if (!platform.empty()) check_platform(st.config, oci::Platform::parse(platform), what);
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
                      Progress& progress, oci::Lease* lease, const oci::DiffIdRecords* diff_ids) {
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
    registry::Puller(*transport, store, po).pull(r);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Cancelled) throw;
    throw Error(e.kind(), "image " + quote(r.familiar()) + " is not in the local store, and pulling it failed: " + e.what());
  }
  if (auto st = load_local_image(store, ref, platform, lease)) return *st;
  throw Error(ErrorKind::NotFound, "image " + quote(r.familiar()) + " not found after pulling it");
}

}  // namespace cbuild::builder
