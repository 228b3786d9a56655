// CacheLog and export_cache — what --cache-to writes (the format is cache_artifact.h;
// docs/cache.md).
//
// CacheLog collects, while the build runs, every record a step used or made (a hit, an
// import or a put), with the stage it belongs to and the key it chains from. entries() picks
// them for an export: mode=max every stage's, mode=min those of the given stages (the final
// image's: its stage and the stages it is built FROM).
//
// export_cache writes one cache artifact:
//   type=local,dest=DIR  an OCI image layout: the blobs first (each appears complete, by
//                        rename), then index.json, replaced by rename, naming the manifest. Two
//                        exporters racing on one DIR leave one of their caches, complete.
//                        Blobs of earlier exports stay (nothing is deleted under a reader).
//   type=registry,ref=R  the layers and the config pushed first (skipped when present, mounted
//                        across repositories when known), then the manifest under R's tag: the
//                        registry swaps the tag atomically, the last complete export wins.
// Throws Error naming `to` on failure (the image is already written).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <functional>

#include "builder/cache/cache_artifact.h"
#include "oci/layout_store.h"

namespace cbuild::builder {

class CacheLog {
 public:
  // Thread-safe. A key noted twice keeps its first record and gains the stage.
  void note(int stage, const oci::Digest& key, const std::string& parent, const CacheRecord& record);
  // In the order first noted. `stages`: nullptr for every stage.
  std::vector<CacheEntry> entries(const std::set<int>* stages) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::set<int>, CacheEntry>> entries_;
  std::map<std::string, std::size_t> by_key_;
};

// `blobs` reads the layers (the store, or an ImportingStore that fetches a lazy hit's layer
// when the destination needs its bytes); the two documents are put into `store`. `note` takes
// progress lines (the push's).
void export_cache(const CacheLocation& to, const std::vector<CacheEntry>& entries, oci::LayoutStore& store,
                  const oci::BlobProvider& blobs, bool tls_verify, const std::function<void(const std::string&)>& note);

}  // namespace cbuild::builder
