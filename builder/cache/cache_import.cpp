#include "builder/cache/cache_import.h"

#include <fcntl.h>

#include "builder/cache/cache_artifact.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/sinks.h"
#include "registry-client/connect.h"
#include "registry-client/manifest_fetch.h"
#include "registry-client/puller.h"
#include "registry-client/reference.h"
#include "registry-client/registry_error.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxDocument = 64u << 20;

// type=local,src=DIR: an OCI image layout whose index.json names the cache manifest.
struct LocalSource : CacheImports::Source {
  fs::path dir;

  fs::path blob(const oci::Digest& d) const { return dir / "blobs" / "sha256" / d.hex(); }

  std::pair<oci::Descriptor, std::string> manifest() override {
    auto text = read_file_if_exists(dir / "index.json", kMaxDocument);
    if (!text) throw Error(ErrorKind::NotFound, "no cache there (no index.json)");
    oci::Index index = oci::Index::parse(*text, "index.json");
    // The last cache manifest the index names (an exporter writes one).
    for (auto it = index.manifests.rbegin(); it != index.manifests.rend(); ++it)
      if (it->artifact_type == kCacheArtifactType) return {*it, read_small(*it)};
    throw Error(ErrorKind::NotFound, "index.json names no cbuild cache");
  }

  std::string read_small(const oci::Descriptor& desc) override {
    if (desc.size < 0 || static_cast<std::uint64_t>(desc.size) > kMaxDocument)
      throw Error(ErrorKind::DataLoss, "blob " + desc.digest.str() + " is too large for a cache document");
    auto bytes = read_file_if_exists(blob(desc.digest), kMaxDocument);
    if (!bytes) throw Error(ErrorKind::NotFound, "blob " + desc.digest.str() + " is missing");
    oci::verify_blob_bytes(desc, *bytes, "cache blob");
    return std::move(*bytes);
  }

  void fetch(const oci::Descriptor& desc, oci::Store& store) override {
    std::error_code ec;
    if (!fs::is_regular_file(blob(desc.digest), ec))
      throw Error(ErrorKind::NotFound, "layer blob " + desc.digest.str() + " is missing");
    oci::FdSource src(open_file(blob(desc.digest), O_RDONLY | O_CLOEXEC), blob(desc.digest).string());
    auto ingest = store.begin_ingest();
    oci::copy_stream(src, *ingest);
    ingest->commit(desc.digest, desc.size);
  }
};

// type=registry,ref=R: the manifest R names in its registry.
struct RegistrySource : CacheImports::Source {
  registry::Reference ref;
  std::unique_ptr<registry::Transport> transport;
  oci::Store* store = nullptr;

  RegistrySource(registry::Reference r, bool tls_verify, oci::Store& s)
      : ref(std::move(r)), transport(registry::connect(ref, tls_verify)), store(&s) {}

  std::pair<oci::Descriptor, std::string> manifest() override {
    registry::FetchedManifest m;
    try {
      m = registry::fetch_manifest(*transport, ref, ref.digest() ? ref.digest()->str() : ref.tag(), "cache import");
    } catch (const registry::RegistryError& e) {
      if (e.http_status() == 404 || e.has_code("MANIFEST_UNKNOWN") || e.has_code("NAME_UNKNOWN"))
        throw Error(ErrorKind::NotFound, "no cache there");
      throw;
    }
    if (!oci::is_manifest(m.descriptor.media_type))
      throw Error(ErrorKind::InvalidArgument, "not a cbuild cache (a " + m.descriptor.media_type + ")");
    return {m.descriptor, std::move(m.bytes)};
  }

  std::string read_small(const oci::Descriptor& desc) override {
    fetch(desc, *store);
    return store->read_blob(desc.digest, kMaxDocument);
  }

  void fetch(const oci::Descriptor& desc, oci::Store& s) override {
    registry::Puller(*transport, s, registry::PullOptions{.tag = false}).fetch_blob(ref, desc);
  }
};

}  // namespace

CacheImports::CacheImports(const std::vector<CacheLocation>& from, oci::Store& store, const oci::DiffIdRecords* diff_ids,
                           oci::Lease* lease, bool tls_verify, std::function<void(const std::string&)> warn)
    : store_(store), diff_ids_(diff_ids), lease_(lease), warn_(std::move(warn)) {
  for (const auto& loc : from) {
    const std::string& name = loc.name;
    try {
      std::unique_ptr<Source> src;
      if (loc.kind == CacheLocation::Kind::Directory) {
        auto l = std::make_unique<LocalSource>();
        l->dir = loc.where;
        src = std::move(l);
      } else {
        src = std::make_unique<RegistrySource>(registry::Reference::parse(loc.where), tls_verify, store);
      }
      src->name = name;
      auto [desc, bytes] = src->manifest();
      oci::Manifest m = parse_cache_manifest(bytes);
      auto loaded = std::make_unique<Loaded>();
      loaded->records = parse_cache_config(src->read_small(m.config));
      loaded->source = std::move(src);
      sources_.push_back(std::move(loaded));
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Cancelled || cancel_requested()) throw;
      warn_(name + ": " + e.what() + "; building without it");
    } catch (const std::exception& e) {
      warn_(name + ": " + e.what() + "; building without it");
    }
  }
}

CacheImports::~CacheImports() = default;

void CacheImports::warn(Loaded& l, const std::string& what) {
  if (l.warned.exchange(true)) return;
  warn_(l.source->name + ": " + what + "; treated as a cache miss");
}

void CacheImports::ensure_layer(Loaded& l, const CacheRecord& r) {
  const oci::Descriptor& d = *r.layer;
  bool present = lease_ ? lease_->add(d.digest) : store_.stat(d.digest).has_value();
  if (!present || store_.stat(d.digest) != d.size) l.source->fetch(d, store_);
  std::optional<oci::Digest> diff_id = diff_ids_ ? diff_ids_->find(d.digest) : std::nullopt;
  if (!diff_id) {
    diff_id = oci::diff_id_of_blob(store_, d, "cache layer " + d.digest.str());
    if (diff_ids_) diff_ids_->record(d.digest, *diff_id);
  }
  if (*diff_id != *r.diff_id)
    throw Error(ErrorKind::DataLoss, "layer " + d.digest.str() + " decompresses to " + diff_id->str() +
                                         ", the record says " + r.diff_id->str());
}

std::optional<CacheRecord> CacheImports::find(const oci::Digest& key,
                                              const std::function<bool(const CacheRecord&)>& usable) {
  for (auto& l : sources_) {
    auto it = l->records.find(key.str());
    if (it == l->records.end()) continue;
    if (!usable(it->second)) {
      warn(*l, "record " + key.str() + " describes other layers than the image it would extend");
      continue;
    }
    try {
      if (it->second.layer) ensure_layer(*l, it->second);
      return it->second;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Cancelled || cancel_requested()) throw;
      warn(*l, "record " + key.str() + ": " + e.what());
    }
  }
  return std::nullopt;
}

}  // namespace cbuild::builder
