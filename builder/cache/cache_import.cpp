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
#include "registry-client/transport.h"

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
    // Else an image layout (-o type=oci,tar=false) whose image may hold an inline cache: the
    // one image it names.
    if (index.manifests.size() == 1 && index.manifests[0].artifact_type.empty() &&
        (oci::is_manifest(index.manifests[0].media_type) || oci::is_index(index.manifests[0].media_type)))
      return {index.manifests[0], read_small(index.manifests[0])};
    throw Error(ErrorKind::NotFound, "index.json names no cbuild cache");
  }

  std::string child(const oci::Descriptor& desc) override { return read_small(desc); }

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

  bool has(const oci::Descriptor& desc) override {
    std::error_code ec;
    auto size = fs::file_size(blob(desc.digest), ec);
    return !ec && size == static_cast<std::uintmax_t>(desc.size);
  }
};

// type=registry,ref=R: the manifest R names in its registry.
struct RegistrySource : CacheImports::Source {
  registry::Reference ref;
  std::unique_ptr<registry::Transport> transport;
  oci::Store* store = nullptr;

  const registry::BlobOrigins* origins = nullptr;

  RegistrySource(registry::Reference r, bool tls_verify, oci::Store& s, const registry::BlobOrigins* o)
      : ref(std::move(r)), transport(registry::connect(ref, tls_verify)), store(&s), origins(o) {}

  std::pair<oci::Descriptor, std::string> manifest() override {
    registry::FetchedManifest m;
    try {
      m = registry::fetch_manifest(*transport, ref, ref.digest() ? ref.digest()->str() : ref.tag(), "cache import");
    } catch (const registry::RegistryError& e) {
      if (e.http_status() == 404 || e.has_code("MANIFEST_UNKNOWN") || e.has_code("NAME_UNKNOWN"))
        throw Error(ErrorKind::NotFound, "no cache there");
      throw;
    }
    if (!oci::is_manifest(m.descriptor.media_type) && !oci::is_index(m.descriptor.media_type))
      throw Error(ErrorKind::InvalidArgument, "not a cbuild cache (a " + m.descriptor.media_type + ")");
    return {m.descriptor, std::move(m.bytes)};
  }

  std::string child(const oci::Descriptor& desc) override {
    return registry::fetch_manifest(*transport, ref, desc.digest.str(), "cache import").bytes;
  }

  std::string read_small(const oci::Descriptor& desc) override {
    fetch(desc, *store);
    return store->read_blob(desc.digest, kMaxDocument);
  }

  void fetch(const oci::Descriptor& desc, oci::Store& s) override {
    registry::Puller(*transport, s, registry::PullOptions{.origins = origins, .tag = false}).fetch_blob(ref, desc);
  }

  bool has(const oci::Descriptor& desc) override {
    registry::Call head;
    head.method = "HEAD";
    head.path = "/v2/" + ref.repository() + "/blobs/" + desc.digest.str();
    head.scopes = {registry::repo_scope(ref.repository(), "pull")};
    head.what = "cache import " + quote(ref.str());
    registry::HttpResponse r = transport->send(head);
    if (r.status == 404) return false;
    registry::expect_status(r, {200}, head.what, transport->host());
    // A push of the image to this registry can mount the layer from here.
    if (origins) origins->record(desc.digest, ref.registry(), ref.repository());
    return true;
  }
};

// The entry of an index for `wanted` (empty: the host's), as a pull picks it.
oci::Descriptor platform_manifest(std::string_view index_bytes, const std::string& wanted) {
  oci::Index index = oci::Index::parse(index_bytes, "image index");
  oci::Platform p = wanted.empty() ? oci::Platform::host() : oci::Platform::parse(wanted);
  for (const auto& d : index.manifests)
    if (oci::is_manifest(d.media_type) && p.matches(d.platform)) return d;
  throw Error(ErrorKind::NotFound, "the image index has no manifest for " + p.str());
}

}  // namespace

CacheImports::CacheImports(const std::vector<CacheLocation>& from, oci::Store& store, const oci::DiffIdRecords* diff_ids,
                           oci::Lease* lease, bool tls_verify, std::function<void(const std::string&)> warn,
                           const registry::BlobOrigins* origins, const std::string& platform)
    : store_(store), diff_ids_(diff_ids), lease_(lease), warn_(std::move(warn)), origins_(origins) {
  for (const auto& loc : from) {
    const std::string& name = loc.name;
    try {
      std::unique_ptr<Source> src;
      if (loc.kind == CacheLocation::Kind::Directory) {
        auto l = std::make_unique<LocalSource>();
        l->dir = loc.where;
        src = std::move(l);
      } else {
        src = std::make_unique<RegistrySource>(registry::Reference::parse(loc.where), tls_verify, store, origins);
      }
      src->name = name;
      auto [desc, bytes] = src->manifest();
      auto loaded = std::make_unique<Loaded>();
      if (oci::is_index(desc.media_type)) bytes = src->child(platform_manifest(bytes, platform));
      oci::Manifest m = oci::Manifest::parse(bytes, "cache manifest");
      if (m.artifact_type.empty() && oci::is_config(m.config.media_type))
        loaded->records = parse_inline_cache(src->read_small(m.config), m.layers);
      else
        loaded->records = parse_cache_config(src->read_small(parse_cache_manifest(bytes).config));
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

// The store has the layer: it must decompress to what the record says.
void CacheImports::check_stored_layer(const CacheRecord& r) {
  const oci::Descriptor& d = *r.layer;
  std::optional<oci::Digest> diff_id = diff_ids_ ? diff_ids_->find(d.digest) : std::nullopt;
  if (!diff_id) {
    diff_id = oci::diff_id_of_blob(store_, d, "cache layer " + d.digest.str());
    if (diff_ids_) diff_ids_->record(d.digest, *diff_id);
  }
  if (*diff_id != *r.diff_id)
    throw Error(ErrorKind::DataLoss, "layer " + d.digest.str() + " decompresses to " + diff_id->str() +
                                         ", the record says " + r.diff_id->str());
}

void CacheImports::fetch_and_check(Loaded& l, const CacheRecord& r) {
  l.source->fetch(*r.layer, store_);
  check_stored_layer(r);
}

std::optional<CacheRecord> CacheImports::find(const oci::Digest& key,
                                              const std::function<bool(const CacheRecord&)>& usable) {
  for (auto& l : sources_) {
    auto it = l->records.find(key.str());
    if (it == l->records.end()) continue;
    const CacheRecord& r = it->second;
    if (!usable(r)) {
      warn(*l, "record " + key.str() + " describes other layers than the image it would extend");
      continue;
    }
    try {
      if (r.layer) {
        const oci::Descriptor& d = *r.layer;
        // The lease keeps a blob the store has from a concurrent prune; one it lacks is lazy.
        bool present = (lease_ ? lease_->add(d.digest) : true) && store_.stat(d.digest) == d.size;
        if (present) {
          check_stored_layer(r);
        } else if (!lazy_size(d.digest)) {
          if (!l->source->has(d)) throw Error(ErrorKind::NotFound, "layer blob " + d.digest.str() + " is missing");
          std::lock_guard lock(lazy_mu_);
          lazy_.emplace(d.digest, Lazy{l.get(), r});
        }
      }
      return r;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Cancelled || cancel_requested()) throw;
      warn(*l, "record " + key.str() + ": " + e.what());
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> CacheImports::lazy_size(const oci::Digest& digest) const {
  std::lock_guard lock(lazy_mu_);
  auto it = lazy_.find(digest);
  if (it == lazy_.end()) return std::nullopt;
  return it->second.record.layer->size;
}

bool CacheImports::fetch_lazy(const oci::Digest& digest) {
  std::optional<Lazy> lazy;
  {
    std::lock_guard lock(lazy_mu_);
    auto it = lazy_.find(digest);
    if (it == lazy_.end()) return false;
    lazy = it->second;
  }
  KeyedMutex::Guard one = fetching_.lock(digest.hex());  // one download per blob
  const oci::Descriptor& d = *lazy->record.layer;
  if (lease_) lease_->add(d.digest);
  if (store_.stat(d.digest) == d.size) return false;
  try {
    fetch_and_check(*lazy->from, lazy->record);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Cancelled) throw;
    throw Error(e.kind(), lazy->from->source->name + ": layer " + d.digest.str() + " of a cache hit: " + e.what() +
                              " (build again without this --cache-from, or with --no-cache)");
  }
  return true;
}

std::optional<std::int64_t> ImportingStore::stat(const oci::Digest& digest) const {
  if (auto size = store_.stat(digest)) return size;
  return imports_.lazy_size(digest);
}

std::unique_ptr<oci::ByteSource> ImportingStore::open(const oci::Digest& digest) const {
  if (!store_.stat(digest)) imports_.fetch_lazy(digest);
  return store_.open(digest);
}

}  // namespace cbuild::builder
