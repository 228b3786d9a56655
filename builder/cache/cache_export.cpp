#include "builder/cache/cache_export.h"

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/sinks.h"
#include "registry-client/blob_origins.h"
#include "registry-client/connect.h"
#include "registry-client/pusher.h"
#include "registry-client/reference.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

void CacheLog::note(int stage, const oci::Digest& key, const std::string& parent, const CacheRecord& record) {
  std::lock_guard lock(mu_);
  auto [it, added] = by_key_.emplace(key.str(), entries_.size());
  if (added) entries_.push_back({{}, CacheEntry{.key = key, .parent = parent, .record = record}});
  entries_[it->second].first.insert(stage);
}

std::vector<CacheEntry> CacheLog::entries(const std::set<int>* stages) const {
  std::lock_guard lock(mu_);
  std::vector<CacheEntry> out;
  for (const auto& [in, e] : entries_) {
    bool wanted = !stages;
    for (int s : in) wanted = wanted || stages->count(s) > 0;
    if (wanted) out.push_back(e);
  }
  return out;
}

namespace {

// A blob appears under its name complete (written to a temp file, fsynced, renamed).
void put_blob_file(const fs::path& path, const std::function<void(int fd)>& write) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return;  // content-addressed: the same bytes
  AtomicFile out(path);
  write(out.fd());
  out.commit();
}

void export_local(const fs::path& dir, const CacheArtifact& a, const oci::BlobProvider& store) {
  fs::path blobs = dir / "blobs" / "sha256";
  make_dirs(blobs);
  write_file_atomic(dir / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  for (const auto& layer : a.layers) {
    fs::path p = blobs / layer.digest.hex();
    std::error_code ec;
    if (auto size = fs::file_size(p, ec); !ec && size == static_cast<std::uintmax_t>(layer.size)) continue;
    fs::remove(p, ec);  // a blob of the wrong size is not what its name says
    put_blob_file(p, [&](int fd) {
      auto src = store.open(layer.digest);  // verified at EOF
      oci::FdSink sink(fd, p.string());
      oci::copy_stream(*src, sink);
    });
  }
  put_blob_file(blobs / a.config_desc.digest.hex(), [&](int fd) { write_all(fd, a.config.data(), a.config.size(), "cache config"); });
  put_blob_file(blobs / a.manifest_desc.digest.hex(),
                [&](int fd) { write_all(fd, a.manifest.data(), a.manifest.size(), "cache manifest"); });
  oci::Index index;
  index.media_type = std::string(oci::kOciIndex);
  oci::Descriptor m = a.manifest_desc;
  m.annotations["org.opencontainers.image.ref.name"] = "latest";
  index.manifests.push_back(m);
  // The switch: readers see the previous cache or this one, never a mix.
  write_file_atomic(dir / "index.json", index.to_json());
}

void export_registry(const registry::Reference& ref, const CacheArtifact& a, oci::LayoutStore& store,
                     const oci::BlobProvider& blobs, bool tls_verify, const std::function<void(const std::string&)>& note) {
  // The pusher reads what it pushes from the store: the two documents join the layers there.
  store.put_blob(a.config);
  store.put_blob(a.manifest);
  auto transport = registry::connect(ref, tls_verify);
  registry::BlobOrigins origins(store.root());
  registry::PushOptions po;
  po.origins = &origins;
  po.log = note;
  registry::Pusher(*transport, blobs, po).push(a.manifest_desc, ref);
}

}  // namespace

void export_cache(const CacheLocation& to, const std::vector<CacheEntry>& entries, oci::LayoutStore& store,
                  const oci::BlobProvider& blobs, bool tls_verify, const std::function<void(const std::string&)>& note) {
  CacheArtifact a = make_cache_artifact(entries);
  try {
    if (to.kind == CacheLocation::Kind::Directory)
      export_local(to.where, a, blobs);
    else
      export_registry(registry::Reference::parse(to.where), a, store, blobs, tls_verify, note);
  } catch (const Error& e) {
    throw Error(e.kind(), to.name + ": " + e.what());
  }
  note(to.name + ": exported " + std::to_string(entries.size()) + " cache records");
}

}  // namespace cbuild::builder
