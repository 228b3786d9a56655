// StoreUsage — what the store's disk space goes to, for `cbuild df` and `prune --keep-storage`.
//
// Sizes are disk usage as `du` counts it (st_blocks × 512; a hard-linked file once per
// snapshot), not apparent sizes. Every blob and snapshot is counted in exactly one group, the
// first that holds it:
//   images       blobs an index.json entry reaches; snapshots of an image's layer stack
//   build cache  step record files; layer blobs and snapshots only records hold
//   snapshots    the other snapshots: pinned by `cbuild mount` (in use) or held by nothing
//   cache mounts RUN --mount=type=cache instances (in use while a RUN holds the lock)
//   unused blobs blobs nothing holds (what plain `prune` removes once a minute old)
// Not counted: index.json, leases, temp files of running operations, the memos and hashes of
// $ROOT/cache/{layers,diff_ids,…} (small bookkeeping files).
//
// The build cache's size is what `prune --keep-storage` compares with its limit; a CacheLedger
// keeps it up to date while prune drops records one by one, least recently used first.
// Reading only: nothing is created or changed, except that the snapshot store's directories
// are made when missing (as opening it always does). Throws cbuild::Error on unreadable stores.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "builder/cache/cache.h"
#include "oci/digest.h"
#include "oci/layout_store.h"

namespace cbuild::cli {

// du of `path` (the entry itself and, for a directory, everything below, without following
// symlinks); each inode once.
std::int64_t disk_usage(const std::filesystem::path& path);

struct UsageRow {
  std::string type;  // "Images", "Build cache", "Snapshots", "Cache mounts", "Unused blobs"
  std::size_t count = 0;
  std::int64_t bytes = 0;
  std::int64_t reclaimable = 0;
};

struct StoreUsage {
  struct Image {
    std::vector<std::string> names;
    oci::Digest id;          // config digest
    std::int64_t bytes = 0;  // its blobs (shared ones too)
  };
  struct Snapshot {
    std::int64_t bytes = 0;
    std::string held_by;  // "image", "cache", "mount", "none"
  };
  struct CacheMount {
    std::filesystem::path dir;  // $ROOT/cache/mounts/<key>/<n>
    std::string id;             // the id the Dockerfile gave
    std::int64_t bytes = 0;
    bool busy = false;
  };

  std::vector<Image> images;
  std::map<oci::Digest, std::int64_t> blob_bytes;  // every blob file
  std::set<oci::Digest> image_blobs;
  std::set<oci::Digest> image_chains;
  std::set<oci::Digest> pinned_chains;  // mounted views and their lowers
  std::map<oci::Digest, Snapshot> snapshots;  // by chain ID
  std::vector<builder::BuildCache::Usage> records;
  std::vector<CacheMount> cache_mounts;

  // Reads everything listed above.
  static StoreUsage measure(const oci::LayoutStore& store, const std::filesystem::path& root);

  std::vector<UsageRow> rows() const;
  // What one record alone makes the build cache bigger by: its file, plus its layer blob when
  // nothing else (image or record) holds it. `shared` is set when something else holds it.
  std::int64_t record_bytes(const builder::BuildCache::Usage& r, bool& shared) const;
};

// The build cache's size (its row of StoreUsage::rows()) while records are dropped: a blob or
// snapshot leaves it with the last record holding it.
class CacheLedger {
 public:
  explicit CacheLedger(const StoreUsage& usage);
  std::int64_t bytes() const noexcept { return bytes_; }
  void drop(const builder::BuildCache::Usage& record);

 private:
  const StoreUsage& usage_;
  std::int64_t bytes_ = 0;
  std::map<oci::Digest, int> blob_refs_, chain_refs_;
};

}  // namespace cbuild::cli
