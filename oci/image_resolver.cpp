#include "oci/image_resolver.h"

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/media_types.h"

namespace cbuild::oci {
namespace {

namespace mt = media_types;

// Nested indexes beyond this are refused rather than followed.
constexpr int kMaxIndexDepth = 4;

struct Reader {
  const BlobProvider& store;
  const ResolveOptions& options;

  std::string read(const Descriptor& d, std::string_view what) const {
    if (options.hold) options.hold(d.digest);
    std::string bytes = store.read_blob(d.digest);
    if (d.size > 0) verify_blob_bytes(d, bytes, what);
    return bytes;
  }

  // The platform a config declares (empty fields when it names none).
  static Platform config_platform(const std::string& config_bytes, const std::string& what) {
    auto j = nlohmann::json::parse(config_bytes, nullptr, false);
    if (!j.is_object()) throw Error(ErrorKind::InvalidArgument, what + ": the image config is not a JSON object");
    auto field = [&](const char* key) {
      auto it = j.find(key);
      return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    Platform p;
    p.os = field("os");
    p.architecture = field("architecture");
    p.variant = field("variant");
    return p;
  }

  // The manifest of `want` in index `d`, nullopt when it has none; `seen` collects the
  // platforms the index offers, for the error.
  std::optional<Descriptor> pick(const Descriptor& d, const std::string& bytes, const std::string& media_type,
                                 const Platform& want, int depth, std::vector<std::string>& seen) const {
    if (depth > kMaxIndexDepth)
      throw Error(ErrorKind::InvalidArgument, options.what + ": image index " + d.digest.str() + " is nested too deep");
    Index index = Index::parse(bytes, options.what + " index " + d.digest.str(), media_type);
    for (const auto& m : index.manifests) {
      if (m.platform) {
        seen.push_back(m.platform->str());
        if (!want.matches(m.platform)) continue;
        if (mt::is_manifest(m.media_type)) return m;
      }
      if (mt::is_index(m.media_type)) {
        auto found = pick(m, read(m, options.what + " index"), m.media_type, want, depth + 1, seen);
        if (found) return found;
      } else if (mt::is_manifest(m.media_type) && !m.platform) {
        // An entry without a platform is what its config says it is.
        Manifest child = Manifest::parse(read(m, options.what + " manifest"), options.what + " manifest", m.media_type);
        Platform have = config_platform(read(child.config, options.what + " config"), options.what);
        if (!have.architecture.empty()) seen.push_back(have.str());
        if (want.matches(have)) return m;
      }
    }
    return std::nullopt;
  }
};

}  // namespace

ResolvedImage resolve_image(const BlobProvider& store, const Descriptor& top, const ResolveOptions& options) {
  Reader r{store, options};
  const std::string& what = options.what;
  ResolvedImage out;
  out.top = top;
  std::string bytes = r.read(top, what);
  std::string media_type = top.media_type.empty() ? sniff_media_type(bytes, what) : top.media_type;
  out.top.media_type = media_type;
  const Platform want = options.platform.value_or(Platform::host());
  if (mt::is_index(media_type)) {
    std::vector<std::string> seen;
    auto pick = r.pick(out.top, bytes, media_type, want, 0, seen);
    if (!pick) {
      std::string have;
      for (const auto& s : seen) have += (have.empty() ? "" : ", ") + s;
      throw Error(ErrorKind::NotFound, what + ": no manifest for platform " + want.str() + " (the index has: " +
                                           (have.empty() ? "none" : have) + ")");
    }
    out.manifest_desc = *pick;
    bytes = r.read(*pick, what + " manifest");
    media_type = pick->media_type;
  } else if (mt::is_manifest(media_type)) {
    out.manifest_desc = out.top;
  } else {
    throw Error(ErrorKind::InvalidArgument,
                what + " (" + top.digest.str() + ") has media type " + quote(media_type) + ", not an image manifest or index");
  }
  out.manifest = Manifest::parse(bytes, what + " manifest " + out.manifest_desc.digest.str(), media_type);
  out.config_bytes = r.read(out.manifest.config, what + " config");
  if (options.platform) {
    // Asked for by platform, an image must be of it: a single-platform image of another one
    // (the store keeps one platform of a pulled index) would give a config claiming a
    // platform its files are not for.
    Platform have = Reader::config_platform(out.config_bytes, what);
    if (!want.matches(have))
      throw Error(ErrorKind::NotFound,
                  what + " is for " + (have.architecture.empty() ? std::string("an unknown platform") : have.str()) +
                      ", not the requested " + want.str() +
                      " (the store holds that one platform of it; `cbuild pull --all-platforms` keeps them all)");
  }
  return out;
}

}  // namespace cbuild::oci
