#include "oci/docker_archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <map>
#include <set>
#include <memory>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/compression.h"
#include "oci/diff_id.h"
#include "oci/image_config.h"
#include "oci/internal/export_writer.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace cbuild::oci {
using json = nlohmann::json;

namespace {

constexpr const char* kContainerdName = "io.containerd.image.name";
constexpr std::size_t kMaxMetadata = 16u << 20;

struct ArchiveFree {
  void operator()(archive* a) const noexcept { archive_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

[[noreturn]] void archive_fail(archive* a, const std::string& op) {
  int err = archive_errno(a);
  const char* msg = archive_error_string(a);
  ErrorKind kind = err > 0 ? kind_from_errno(err) : ErrorKind::InvalidArgument;
  throw Error(kind, op + ": " + (msg ? msg : "libarchive error"), err > 0 ? err : 0);
}

class TarExportWriter final : public internal::ExportWriter {
 public:
  explicit TarExportWriter(int fd) : a_(archive_write_new()) {
    if (!a_) throw Error(ErrorKind::ResourceExhausted, "save: cannot allocate libarchive handle");
    archive_write_set_format_pax_restricted(a_.get());
    archive_write_set_bytes_per_block(a_.get(), 10240);
    if (archive_write_open_fd(a_.get(), fd) != ARCHIVE_OK) archive_fail(a_.get(), "save: open output");
  }
  void dir(const std::string& name) override { header(name, AE_IFDIR, 0755, 0); }
  void file(const std::string& name, std::string_view data) override {
    header(name, AE_IFREG, 0644, static_cast<std::int64_t>(data.size()));
    put(data.data(), data.size());
  }
  void blob(const LayoutStore& store, const Descriptor& d) override {
    std::string name = "blobs/" + d.digest.algorithm() + "/" + d.digest.hex();
    if (!written_.insert(name).second) return;
    // Opened first: a blob the store holds lazily is fetched by the open (layout_store.h).
    auto src = store.open(d.digest);
    auto size = store.stat(d.digest);
    if (!size) throw Error(ErrorKind::NotFound, "save: blob " + d.digest.str() + " is not in the store");
    header(name, AE_IFREG, 0644, *size);
    std::vector<std::byte> buf(1 << 20);
    for (;;) {
      std::size_t n = src->read(buf.data(), buf.size());
      if (n == 0) break;
      put(buf.data(), n);
    }
  }
  void close() {
    if (archive_write_close(a_.get()) != ARCHIVE_OK) archive_fail(a_.get(), "save: finish archive");
  }

 private:
  void header(const std::string& name, unsigned type, int mode, std::int64_t size) {
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), static_cast<mode_t>(mode));
    archive_entry_set_size(e.get(), size);
    archive_entry_set_mtime(e.get(), 0, 0);
    if (archive_write_header(a_.get(), e.get()) != ARCHIVE_OK) archive_fail(a_.get(), "save: write " + name);
  }
  void put(const void* p, std::size_t n) {
    auto w = archive_write_data(a_.get(), p, n);
    if (w < 0 || static_cast<std::size_t>(w) != n) archive_fail(a_.get(), "save: write data");
  }
  ArchivePtr a_;
  std::set<std::string> written_;
};

std::string tag_of(const std::string& full) {
  auto slash = full.rfind('/');
  auto colon = full.rfind(':');
  auto at = full.find('@');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) return {};
  return full.substr(colon + 1, at == std::string::npos ? std::string::npos : at - colon - 1);
}

// docker's familiar form, without depending on registry-client (oci is below it).
std::string familiar(const std::string& full) {
  std::string s = full;
  if (s.starts_with("docker.io/")) s = s.substr(10);
  if (s.starts_with("library/") && s.find('/', 8) == std::string::npos) s = s.substr(8);
  return s;
}

}  // namespace

void save_archive(const LayoutStore& store, const std::vector<ArchiveImage>& images, ArchiveFormat format, int fd) {
  TarExportWriter w(fd);
  internal::write_images(w, store, images, format);
  w.close();
}

void internal::write_images(ExportWriter& w, const LayoutStore& store, const std::vector<ArchiveImage>& images,
                            ArchiveFormat format) {
  w.dir("blobs/");
  w.dir("blobs/sha256/");
  json manifest_json = json::array();
  json repositories = json::object();
  Index index;
  index.media_type = std::string(media_types::kOciIndex);
  for (auto& img : images) {
    w.blob(store, img.target);
    // Every blob the target reaches (an index's manifests for all platforms too).
    std::vector<Descriptor> manifests;
    if (media_types::is_index(img.target.media_type)) {
      Index x = Index::parse(store.read_blob(img.target.digest), "index " + img.target.digest.str());
      for (auto& m : x.manifests)
        if (media_types::is_manifest(m.media_type) && store.stat(m.digest)) manifests.push_back(m);
    } else {
      manifests.push_back(img.target);
    }
    std::optional<Manifest> first;
    for (auto& md : manifests) {
      w.blob(store, md);
      Manifest m = Manifest::parse(store.read_blob(md.digest), "manifest " + md.digest.str(), md.media_type);
      w.blob(store, m.config);
      for (auto& l : m.layers) w.blob(store, l);
      if (!first) first = m;
    }
    if (!first) throw Error(ErrorKind::NotFound, "save: " + img.target.digest.str() + " has no manifest in the store");
    json repo_tags = json::array();
    for (auto& n : img.names) {
      repo_tags.push_back(familiar(n));
      std::string name = familiar(n).substr(0, familiar(n).size() - (tag_of(n).empty() ? 0 : tag_of(n).size() + 1));
      if (!first->layers.empty()) repositories[name][tag_of(n)] = first->layers.back().digest.hex();
    }
    json layers = json::array();
    for (auto& l : first->layers) layers.push_back("blobs/" + l.digest.algorithm() + "/" + l.digest.hex());
    manifest_json.push_back({{"Config", "blobs/sha256/" + first->config.digest.hex()}, {"RepoTags", repo_tags}, {"Layers", layers}});
    auto entry = [&](const std::string* name) {
      Descriptor d = img.target;
      d.annotations.clear();
      if (name) {
        d.annotations[kContainerdName] = *name;
        std::string t = tag_of(*name);
        if (!t.empty()) d.annotations[kRefNameAnnotation] = t;
      }
      index.manifests.push_back(std::move(d));
    };
    if (img.names.empty()) entry(nullptr);
    for (auto& n : img.names) entry(&n);
  }
  w.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  w.file("index.json", index.to_json());
  if (format == ArchiveFormat::Docker) {
    w.file("manifest.json", manifest_json.dump());
    if (!repositories.empty()) w.file("repositories", repositories.dump());
  }
}

namespace {

struct Stored {
  Digest digest;
  std::int64_t size = 0;
  Codec codec = Codec::None;
};

// What each layer of the archive decompresses to: computed while it was ingested (a plain tar
// is its own DiffID), else remembered, else read back from the store.
class LayerDiffIds {
 public:
  explicit LayerDiffIds(const LayoutStore& store) : store_(store), records_(store.root()) {}
  void add(const Digest& blob, const Digest& diff_id) { known_[blob] = diff_id; }
  Digest of(const Descriptor& layer, const std::string& what) {
    if (auto it = known_.find(layer.digest); it != known_.end()) return it->second;
    std::optional<Digest> d = records_.find(layer.digest);
    if (!d) {
      d = diff_id_of_blob(store_, layer, what + ": layer " + layer.digest.str());
      records_.record(layer.digest, *d);
    }
    known_[layer.digest] = *d;
    return *d;
  }
  const DiffIdRecords& records() const { return records_; }

 private:
  const LayoutStore& store_;
  DiffIdRecords records_;
  std::map<Digest, Digest> known_;
};

// The layers must decompress to the config's diff_ids: an image that lies about them could
// claim another image's snapshots (keyed by chain IDs) in this store.
void check_layers(const Manifest& m, const ImageConfig& config, LayerDiffIds& ids, const std::string& what) {
  std::vector<Digest> got;
  for (const auto& l : m.layers) got.push_back(ids.of(l, what));
  check_diff_ids(m.layers, got, config.rootfs.diff_ids, m.config.digest, what);
}

std::string clean_name(std::string n) {
  while (n.starts_with("./")) n = n.substr(2);
  while (n.starts_with("/")) n = n.substr(1);
  return n;
}

Descriptor need_blob(const LayoutStore& store, const Descriptor& d, const std::string& what) {
  auto size = store.stat(d.digest);
  if (!size) throw Error(ErrorKind::NotFound, what + " names blob " + d.digest.str() + ", which the archive does not contain");
  if (*size != d.size)
    throw Error(ErrorKind::DataLoss, what + ": blob " + d.digest.str() + " has " + std::to_string(*size) +
                                         " bytes, descriptor says " + std::to_string(d.size));
  return d;
}

// Checks that everything a manifest or index needs is present (and its documents parse, and its
// layers match their diff_ids).
void check_complete(const LayoutStore& store, const Descriptor& target, LayerDiffIds& ids, const std::string& what) {
  need_blob(store, target, what);
  std::vector<Descriptor> manifests;
  if (media_types::is_index(target.media_type)) {
    std::string bytes = store.read_blob(target.digest);
    for (auto& m : Index::parse(bytes, what + " index " + target.digest.str(), target.media_type).manifests)
      if (store.stat(m.digest)) manifests.push_back(m);  // other platforms may be absent
    if (manifests.empty()) throw Error(ErrorKind::NotFound, what + ": index " + target.digest.str() + " has no manifest in the archive");
  } else {
    manifests.push_back(target);
  }
  for (auto& md : manifests) {
    std::string bytes = store.read_blob(md.digest);
    verify_blob_bytes(md, bytes, what + " manifest");
    Manifest m = Manifest::parse(bytes, what + " manifest " + md.digest.str(), md.media_type);
    need_blob(store, m.config, what + " manifest " + md.digest.str());
    ImageConfig config = ImageConfig::parse(store.read_blob(m.config.digest), what + " config " + m.config.digest.str());
    for (auto& l : m.layers) need_blob(store, l, what + " manifest " + md.digest.str());
    if (media_types::is_config(m.config.media_type)) check_layers(m, config, ids, what + " manifest " + md.digest.str());
  }
}

}  // namespace

std::vector<LoadedImage> load_archive(LayoutStore& store, int fd, const std::string& what) {
  ArchivePtr a(archive_read_new());
  if (!a) throw Error(ErrorKind::ResourceExhausted, "load: cannot allocate libarchive handle");
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_fd(a.get(), fd, 1 << 20) != ARCHIVE_OK) archive_fail(a.get(), "load " + what);
  std::map<std::string, std::string> meta;  // manifest.json, index.json, oci-layout, repositories
  std::map<std::string, Stored> files;
  LayerDiffIds diff_ids(store);
  std::vector<std::byte> buf(1 << 20);
  archive_entry* e = nullptr;
  int rc;
  while ((rc = archive_read_next_header(a.get(), &e)) == ARCHIVE_OK) {
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    std::string name = clean_name(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
    if (name == "manifest.json" || name == "index.json" || name == "oci-layout" || name == "repositories") {
      std::string text;
      for (;;) {
        auto n = archive_read_data(a.get(), buf.data(), buf.size());
        if (n < 0) archive_fail(a.get(), "load " + what + ": read " + name);
        if (n == 0) break;
        text.append(reinterpret_cast<const char*>(buf.data()), static_cast<std::size_t>(n));
        if (text.size() > kMaxMetadata) throw Error(ErrorKind::InvalidArgument, "load " + what + ": " + name + " is too large");
      }
      meta[name] = std::move(text);
      continue;
    }
    if (name.ends_with("/json") || name.ends_with("/VERSION")) continue;  // legacy v1 metadata
    std::optional<Digest> expected;
    if (name.starts_with("blobs/")) {
      auto rest = name.substr(6);
      auto slash = rest.find('/');
      if (slash != std::string::npos) expected = Digest::try_parse(rest.substr(0, slash) + ":" + rest.substr(slash + 1));
    }
    auto ing = store.begin_ingest();
    Stored st;
    bool head = true;
    // A compressed blob may be a layer: its DiffID is computed as it streams in (one pass).
    std::optional<DiffIdSink> hasher;
    for (;;) {
      auto n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n < 0) archive_fail(a.get(), "load " + what + ": read " + name);
      if (n == 0) break;
      if (head) {
        st.codec = detect_codec(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
        if (st.codec != Codec::None) hasher.emplace("load " + what + ": " + name);
        head = false;
      }
      ing->write(buf.data(), static_cast<std::size_t>(n));
      if (hasher) hasher->write(buf.data(), static_cast<std::size_t>(n));
    }
    ing->finish();
    try {
      st.digest = ing->commit(expected);
    } catch (Error& err) {
      throw err.with_context("load " + what + ": " + name);
    }
    st.size = ing->bytes_written();
    if (!hasher) {
      diff_ids.add(st.digest, st.digest);
    } else {
      try {
        Digest d = hasher->diff_id();
        diff_ids.add(st.digest, d);
        diff_ids.records().record(st.digest, d);
      } catch (const Error&) {
        // Not a layer that decodes: if a manifest names it as one, reading it back fails there.
      }
    }
    files[name] = st;
  }
  if (rc != ARCHIVE_EOF) archive_fail(a.get(), "load " + what);
  if (meta.empty() && files.empty()) throw Error(ErrorKind::InvalidArgument, "load " + what + ": empty or not a tar archive");

  std::vector<LoadedImage> out;
  json docker_manifest;
  if (meta.count("manifest.json")) {
    docker_manifest = json::parse(meta["manifest.json"], nullptr, false);
    if (!docker_manifest.is_array()) throw Error(ErrorKind::InvalidArgument, "load " + what + ": manifest.json is not a JSON array");
  }
  auto repo_tags_for = [&](const Digest& config) {
    std::vector<std::string> names;
    for (auto& m : docker_manifest) {
      if (!m.is_object() || !m.contains("Config") || !m["Config"].is_string()) continue;
      auto it = files.find(clean_name(m["Config"].get<std::string>()));
      if (it == files.end() || it->second.digest != config) continue;
      if (m.contains("RepoTags") && m["RepoTags"].is_array())
        for (auto& t : m["RepoTags"])
          if (t.is_string()) names.push_back(t.get<std::string>());
    }
    return names;
  };

  if (meta.count("index.json")) {
    Index idx = Index::parse(meta["index.json"], "load " + what + ": index.json");
    for (auto& d : idx.manifests) {
      std::string image = "load " + what;
      if (auto it = d.annotations.find(kContainerdName); it != d.annotations.end()) image += ": image " + quote(it->second);
      else if (auto r = d.annotations.find(kRefNameAnnotation); r != d.annotations.end()) image += ": image " + quote(r->second);
      check_complete(store, d, diff_ids, image);
      LoadedImage img;
      img.target = d;
      img.target.annotations.clear();
      if (auto it = d.annotations.find(kContainerdName); it != d.annotations.end()) img.names.push_back(it->second);
      else if (auto r = d.annotations.find(kRefNameAnnotation); r != d.annotations.end()) img.names.push_back(r->second);
      if (media_types::is_manifest(d.media_type))
        img.config = Manifest::parse(store.read_blob(d.digest), "manifest", d.media_type).config.digest;
      if (img.names.empty() && !img.config.is_empty()) img.names = repo_tags_for(img.config);
      // One image named several times in index.json becomes one result with several names.
      auto same = std::find_if(out.begin(), out.end(), [&](auto& o) { return o.target.digest == d.digest; });
      if (same != out.end()) same->names.insert(same->names.end(), img.names.begin(), img.names.end());
      else out.push_back(std::move(img));
    }
    return out;
  }
  if (docker_manifest.is_null()) throw Error(ErrorKind::InvalidArgument, "load " + what + ": neither index.json nor manifest.json in the archive");
  for (std::size_t i = 0; i < docker_manifest.size(); ++i) {
    const json& m = docker_manifest[i];
    std::string w = "load " + what + ": manifest.json[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("Config") || !m["Config"].is_string())
      throw Error(ErrorKind::InvalidArgument, w + ": field \"Config\" is missing");
    auto cfg = files.find(clean_name(m["Config"].get<std::string>()));
    if (cfg == files.end()) throw Error(ErrorKind::NotFound, w + ": config " + quote(m["Config"].get<std::string>()) + " is not in the archive");
    ImageConfig config = ImageConfig::parse(store.read_blob(cfg->second.digest), w + " config");
    Manifest man;
    man.media_type = std::string(media_types::kDockerManifest);
    man.config = Descriptor{.media_type = std::string(media_types::kDockerConfig), .digest = cfg->second.digest, .size = cfg->second.size};
    if (!m.contains("Layers") || !m["Layers"].is_array()) throw Error(ErrorKind::InvalidArgument, w + ": field \"Layers\" is missing");
    for (auto& l : m["Layers"]) {
      if (!l.is_string()) throw Error(ErrorKind::InvalidArgument, w + ": field \"Layers\" must be an array of strings");
      auto f = files.find(clean_name(l.get<std::string>()));
      if (f == files.end()) throw Error(ErrorKind::NotFound, w + ": layer " + quote(l.get<std::string>()) + " is not in the archive");
      std::string_view mt = f->second.codec == Codec::Gzip   ? media_types::kDockerLayerGzip
                            : f->second.codec == Codec::Zstd ? media_types::kOciLayerZstd
                                                             : media_types::kDockerLayer;
      man.layers.push_back(Descriptor{.media_type = std::string(mt), .digest = f->second.digest, .size = f->second.size});
    }
    if (man.layers.size() != config.rootfs.diff_ids.size())
      throw Error(ErrorKind::InvalidArgument, w + ": " + std::to_string(man.layers.size()) + " layers but the config lists " +
                                                  std::to_string(config.rootfs.diff_ids.size()) + " diff_ids");
    std::string image_name = w;
    if (m.contains("RepoTags") && m["RepoTags"].is_array() && !m["RepoTags"].empty() && m["RepoTags"][0].is_string())
      image_name += " (" + quote(m["RepoTags"][0].get<std::string>()) + ")";
    check_layers(man, config, diff_ids, image_name);
    std::string bytes = man.to_json();
    LoadedImage img;
    img.target = Descriptor{.media_type = man.media_type, .digest = store.put_blob(bytes), .size = static_cast<std::int64_t>(bytes.size())};
    img.config = cfg->second.digest;
    if (m.contains("RepoTags") && m["RepoTags"].is_array())
      for (auto& t : m["RepoTags"])
        if (t.is_string()) img.names.push_back(t.get<std::string>());
    out.push_back(std::move(img));
  }
  return out;
}

}  // namespace cbuild::oci
