// CacheImports — the caches of --cache-from, consulted in order when the local BuildCache
// misses (the format is cache_artifact.h; docs/cache.md).
//
// The constructor reads each source's manifest and records: a local OCI layout directory
// (type=local,src=DIR: the cache manifest index.json names, or the one image it names) or a
// registry reference (type=registry,ref=R). A source may also be an image built with
// --cache-to type=inline (a manifest, or an index: the build's platform's manifest): its
// records are read from its config (parse_inline_cache) and its layers are the hits' layers,
// checked and fetched from that source like a cache artifact's. find(key) returns the record of
// the first source that has the key.
// A hit downloads nothing: the layer must exist in the source (a stat, or a HEAD), and is
// remembered as lazy; fetch_lazy() brings it into the store when something reads it
// (ImportingStore::open: a step that needs the files, the image written to the store, an
// export) — streamed, verified by digest and size, and checked to decompress to the record's
// DiffID. A layer the store already has is checked against the DiffID at the hit. The caller
// puts a hit into the local BuildCache too.
//
// Never a failed build at a hit: a missing or unreadable source, a corrupt manifest or record
// document, a format version newer than this cbuild reads, a layer blob that is gone or (when
// the store has it) does not match — each is a miss (the source is dropped when its records
// cannot be read) with at most one warning line per source, naming it. A lazy layer that fails
// when it is fetched later fails the build with an error naming the source (the record was
// already used). Only cancellation propagates from find(). Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "builder/cache/cache.h"
#include "builder/cache/cache_artifact.h"
#include "oci/diff_id.h"
#include "oci/base/keyed_mutex.h"
#include "oci/layout_store.h"
#include "registry-client/blob_origins.h"

namespace cbuild::builder {

class CacheImports {
 public:
  // `warn` takes one line (thread-safe). `platform` ("os/arch[/variant]", empty: the host's)
  // picks the manifest of an index an inline cache is read from.
  CacheImports(const std::vector<CacheLocation>& from, oci::Store& store, const oci::DiffIdRecords* diff_ids,
               oci::Lease* lease, bool tls_verify, std::function<void(const std::string&)> warn,
               const registry::BlobOrigins* origins = nullptr, const std::string& platform = {});
  ~CacheImports();
  CacheImports(const CacheImports&) = delete;
  CacheImports& operator=(const CacheImports&) = delete;

  bool empty() const noexcept { return sources_.empty(); }
  // `usable`: the caller's check of a record against the image so far; a record it refuses
  // is a miss with a warning.
  std::optional<CacheRecord> find(const oci::Digest& key, const std::function<bool(const CacheRecord&)>& usable);
  // The size of a layer a hit named and the store does not have yet.
  std::optional<std::int64_t> lazy_size(const oci::Digest& digest) const;
  // Fetches a layer a hit named into the store, if the store lacks it (throws Error naming the
  // source when it cannot). Returns whether bytes were moved.
  bool fetch_lazy(const oci::Digest& digest);

  // Where a cache's bytes come from: a directory or a registry.
  struct Source {
    virtual ~Source() = default;
    std::string name;  // "--cache-from type=local,src=DIR", for warnings
    // The bytes and descriptor of the manifest (or index) the source names; throws when there
    // is none.
    virtual std::pair<oci::Descriptor, std::string> manifest() = 0;
    // The manifest `desc` names (an index's entry), verified.
    virtual std::string child(const oci::Descriptor& desc) = 0;
    // A small blob, verified against `desc`.
    virtual std::string read_small(const oci::Descriptor& desc) = 0;
    // Puts the blob `desc` names into `store`, verified.
    virtual void fetch(const oci::Descriptor& desc, oci::Store& store) = 0;
    // Whether the source holds the blob (no download).
    virtual bool has(const oci::Descriptor& desc) = 0;
  };

 private:
  struct Loaded {
    std::unique_ptr<Source> source;
    std::map<std::string, CacheRecord> records;
    std::atomic<bool> warned{false};
  };
  void warn(Loaded& l, const std::string& what);
  void check_stored_layer(const CacheRecord& r);
  void fetch_and_check(Loaded& l, const CacheRecord& r);
  struct Lazy {
    Loaded* from;
    CacheRecord record;
  };

  oci::Store& store_;
  const oci::DiffIdRecords* diff_ids_;
  oci::Lease* lease_;
  std::function<void(const std::string&)> warn_;
  const registry::BlobOrigins* origins_;
  std::vector<std::unique_ptr<Loaded>> sources_;
  mutable std::mutex lazy_mu_;
  std::map<oci::Digest, Lazy> lazy_;
  KeyedMutex fetching_;
};

// The store as the build sees it while --cache-from hits may be lazy: a blob a hit named counts
// as present (stat), and is fetched on its first open(). Everything else is `store`'s.
class ImportingStore final : public oci::Store {
 public:
  ImportingStore(oci::Store& store, CacheImports& imports) : store_(store), imports_(imports) {}
  std::optional<std::int64_t> stat(const oci::Digest& digest) const override;
  std::unique_ptr<oci::ByteSource> open(const oci::Digest& digest) const override;
  std::unique_ptr<oci::Ingest> begin_ingest() override { return store_.begin_ingest(); }
  oci::Digest put_blob(std::string_view bytes) override { return store_.put_blob(bytes); }
  std::optional<oci::Descriptor> resolve(std::string_view name) const override { return store_.resolve(name); }
  void set_tag(std::string_view name, const oci::Descriptor& desc) override { store_.set_tag(name, desc); }
  bool remove_tag(std::string_view name) override { return store_.remove_tag(name); }
  std::vector<std::pair<std::string, oci::Descriptor>> tags() const override { return store_.tags(); }

 private:
  oci::Store& store_;
  CacheImports& imports_;
};

}  // namespace cbuild::builder
