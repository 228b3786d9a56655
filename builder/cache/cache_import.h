// CacheImports — the caches of --cache-from, consulted in order when the local BuildCache
// misses (the format is cache_artifact.h; docs/cache.md).
//
// The constructor reads each source's manifest and records: a local OCI layout directory
// (type=local,src=DIR: the cache manifest index.json names) or a registry reference
// (type=registry,ref=R). find(key) returns the record of the first source that has the key,
// after fetching its layer blob into the store (streamed, verified by digest and size) and
// checking that it decompresses to the record's DiffID — so what a hit hands the build is
// exactly what the record claims. A record is also put into the local BuildCache by the
// caller, so the next build needs no import.
//
// Never a failed build: a missing or unreadable source, a corrupt manifest or record
// document, a format version newer than this cbuild reads, a layer blob that is gone or does
// not match — each is a miss (the source is dropped when its records cannot be read) with at
// most one warning line per source, naming it. Only cancellation propagates. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "builder/cache/cache.h"
#include "builder/cache/cache_artifact.h"
#include "oci/diff_id.h"
#include "oci/layout_store.h"

namespace cbuild::builder {

class CacheImports {
 public:
  // `warn` takes one line (thread-safe).
  CacheImports(const std::vector<CacheLocation>& from, oci::Store& store, const oci::DiffIdRecords* diff_ids,
               oci::Lease* lease, bool tls_verify, std::function<void(const std::string&)> warn);
  ~CacheImports();
  CacheImports(const CacheImports&) = delete;
  CacheImports& operator=(const CacheImports&) = delete;

  bool empty() const noexcept { return sources_.empty(); }
  // `usable`: the caller's check of a record against the image so far; a record it refuses
  // is a miss with a warning.
  std::optional<CacheRecord> find(const oci::Digest& key, const std::function<bool(const CacheRecord&)>& usable);

  // Where a cache's bytes come from: a directory or a registry.
  struct Source {
    virtual ~Source() = default;
    std::string name;  // "--cache-from type=local,src=DIR", for warnings
    // The cache manifest's bytes and descriptor; throws when there is none.
    virtual std::pair<oci::Descriptor, std::string> manifest() = 0;
    // A small blob, verified against `desc`.
    virtual std::string read_small(const oci::Descriptor& desc) = 0;
    // Puts the blob `desc` names into `store`, verified.
    virtual void fetch(const oci::Descriptor& desc, oci::Store& store) = 0;
  };

 private:
  struct Loaded {
    std::unique_ptr<Source> source;
    std::map<std::string, CacheRecord> records;
    std::atomic<bool> warned{false};
  };
  void warn(Loaded& l, const std::string& what);
  void ensure_layer(Loaded& l, const CacheRecord& r);

  oci::Store& store_;
  const oci::DiffIdRecords* diff_ids_;
  oci::Lease* lease_;
  std::function<void(const std::string&)> warn_;
  std::vector<std::unique_ptr<Loaded>> sources_;
};

}  // namespace cbuild::builder
