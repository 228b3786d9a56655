#include "cli/layout_image.h"

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/verify.h"

namespace cbuild::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::int64_t kMaxDocument = 4 << 20;

fs::path blob_path(const fs::path& layout, const oci::Digest& d) { return layout / "blobs" / d.algorithm() / d.hex(); }

std::string read_blob(const fs::path& layout, const oci::Descriptor& d, std::string_view what) {
  if (d.size > kMaxDocument) throw Error(ErrorKind::ResourceExhausted, std::string(what) + " is larger than 4 MiB");
  auto src = oci::VerifyingSource(oci::FdSource::open(blob_path(layout, d.digest)), d.digest, d.size,
                                  std::string(what) + " " + d.digest.str());
  std::string out;
  std::byte buf[65536];
  for (;;) {
    std::size_t n = src.read(std::span<std::byte>(buf, sizeof buf));
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(buf), n);
  }
  return out;
}

json parse_json(const std::string& text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::InvalidArgument, std::string(what) + " is not valid JSON: " + e.what());
  }
}

std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  if (j.contains(key) && j[key].is_array())
    for (const auto& v : j[key])
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

bool is_index(const std::string& media_type) {
  return media_type == "application/vnd.oci.image.index.v1+json" ||
         media_type == "application/vnd.docker.distribution.manifest.list.v2+json";
}

// Follows indexes down to the host platform's manifest.
oci::Descriptor pick_manifest(const fs::path& layout, oci::Descriptor d) {
  for (int depth = 0; is_index(d.media_type); ++depth) {
    if (depth > 4) throw Error(ErrorKind::InvalidArgument, "image index nesting too deep");
    json idx = parse_json(read_blob(layout, d, "image index"), "image index");
    const oci::Platform host = oci::Platform::host();
    std::optional<oci::Descriptor> found;
    for (const auto& m : idx.value("manifests", json::array())) {
      oci::Descriptor c = oci::descriptor_from_json(m, "image index");
      if (!c.platform || (c.platform->os == host.os && c.platform->architecture == host.architecture)) {
        found = c;
        break;
      }
    }
    if (!found) throw Error(ErrorKind::NotFound, "no manifest for " + host.str() + " in image index " + d.digest.str());
    d = *found;
  }
  return d;
}

}  // namespace

std::string normalize_reference(std::string_view ref) {
  std::string r(ref);
  if (r.rfind("sha256:", 0) == 0) return r;
  std::size_t slash = r.find('/');
  std::string first = slash == std::string::npos ? "" : r.substr(0, slash);
  bool has_host = slash != std::string::npos &&
                  (first.find('.') != std::string::npos || first.find(':') != std::string::npos || first == "localhost");
  if (!has_host) r = (slash == std::string::npos ? "docker.io/library/" : "docker.io/") + r;
  std::size_t last_slash = r.rfind('/');
  std::string tail = r.substr(last_slash + 1);
  if (tail.find(':') == std::string::npos && tail.find('@') == std::string::npos) r += ":latest";
  return r;
}

std::unique_ptr<oci::TarReader> LayoutImage::open_layer(std::size_t i) const {
  const oci::Descriptor& d = layers.at(i);
  auto src = std::make_unique<oci::VerifyingSource>(oci::FdSource::open(blob_path(layout, d.digest)), d.digest, d.size,
                                                    "layer " + d.digest.str());
  return std::make_unique<oci::TarReader>(std::move(src), "layer " + d.digest.str());
}

LayoutImage open_layout_image(const fs::path& layout, std::string_view ref) {
  auto index_text = read_file_if_exists(layout / "index.json", kMaxDocument);
  if (!index_text || !fs::exists(layout / "oci-layout"))
    throw Error(ErrorKind::NotFound, quote(layout.string()) + " is not an OCI image layout (no index.json or oci-layout)");
  json index = parse_json(*index_text, "index.json");
  std::string want = ref.empty() ? "" : normalize_reference(ref);
  std::optional<oci::Descriptor> chosen;
  auto manifests = index.value("manifests", json::array());
  for (const auto& m : manifests) {
    oci::Descriptor d = oci::descriptor_from_json(m, "index.json");
    auto name = d.annotations.find("org.opencontainers.image.ref.name");
    bool match = ref.empty() ? manifests.size() == 1
                             : d.digest.str() == want ||
                                   (name != d.annotations.end() &&
                                    (name->second == want || name->second == ref ||
                                     normalize_reference(name->second) == want));
    if (match) {
      chosen = d;
      break;
    }
  }
  if (!chosen)
    throw Error(ErrorKind::NotFound, "image " + quote(ref.empty() ? layout.string() : std::string(ref)) +
                                         " not found in " + quote(layout.string()));
  LayoutImage img;
  img.layout = layout;
  img.name = ref.empty() ? chosen->digest.str() : want;
  oci::Descriptor md = pick_manifest(layout, *chosen);
  img.manifest_digest = md.digest;
  json manifest = parse_json(read_blob(layout, md, "manifest"), "manifest " + md.digest.str());
  if (!manifest.contains("config") || !manifest.contains("layers"))
    throw Error(ErrorKind::InvalidArgument, "manifest " + md.digest.str() + " lacks config or layers");
  oci::Descriptor cd = oci::descriptor_from_json(manifest["config"], "manifest config");
  img.config_digest = cd.digest;
  for (const auto& l : manifest["layers"]) img.layers.push_back(oci::descriptor_from_json(l, "manifest layers"));
  json config = parse_json(read_blob(layout, cd, "image config"), "image config " + cd.digest.str());
  for (const auto& s : strings(config.value("rootfs", json::object()), "diff_ids"))
    img.diff_ids.push_back(oci::Digest::parse(s, "image config rootfs.diff_ids"));
  if (img.diff_ids.size() != img.layers.size())
    throw Error(ErrorKind::InvalidArgument, "image config " + cd.digest.str() + " has " +
                                                std::to_string(img.diff_ids.size()) + " diff_ids for " +
                                                std::to_string(img.layers.size()) + " layers");
  json c = config.value("config", json::object());
  if (c.is_null()) c = json::object();
  img.runtime.env = strings(c, "Env");
  img.runtime.entrypoint = strings(c, "Entrypoint");
  img.runtime.cmd = strings(c, "Cmd");
  if (c.contains("WorkingDir") && c["WorkingDir"].is_string()) img.runtime.working_dir = c["WorkingDir"];
  if (c.contains("User") && c["User"].is_string()) img.runtime.user = c["User"];
  if (c.contains("Labels") && c["Labels"].is_object())
    for (const auto& [k, v] : c["Labels"].items())
      if (v.is_string()) img.runtime.labels[k] = v.get<std::string>();
  return img;
}

std::optional<oci::Digest> ensure_snapshots(overlay::SnapshotStore& snapshots, const LayoutImage& image) {
  std::vector<oci::Digest> chains = overlay::chain_ids(image.diff_ids);
  for (std::size_t i = 0; i < chains.size(); ++i) {
    if (snapshots.has(chains[i])) continue;
    auto reader = image.open_layer(i);
    snapshots.ensure(chains[i], i ? std::optional<oci::Digest>(chains[i - 1]) : std::nullopt, *reader);
  }
  if (chains.empty()) return std::nullopt;
  return chains.back();
}

LayoutImage open_image_arg(std::string_view arg, const std::string& store_root) {
  if (arg.rfind("oci:", 0) == 0) {
    std::string rest(arg.substr(4));
    // DIR may itself contain ':'? Only the first ':' after the directory splits off REF when
    // the part before it is an existing layout.
    std::size_t colon = rest.find(':');
    if (colon != std::string::npos && fs::exists(fs::path(rest.substr(0, colon)) / "index.json"))
      return open_layout_image(rest.substr(0, colon), rest.substr(colon + 1));
    return open_layout_image(rest, "");
  }
  return open_layout_image(store_root, arg);
}

}  // namespace cbuild::cli
