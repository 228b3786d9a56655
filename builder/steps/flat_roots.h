// FlatRoots — the stage rootfs directories of the chroot isolation level (overlay/isolation.h),
// where nothing may be mounted: a layer stack is materialised as one plain directory (its
// layers applied in flatten form, overlay/applier.h) instead of overlay snapshots.
//
// A build holds one FlatRoots. take() hands out the rootfs of a stack for exclusive use:
// the directory of the longest prefix of the stack that it holds, with the missing layers
// applied from the store (each checked against its DiffID), or a new directory. put() keeps
// a directory as the rootfs of a chain for the next take(); a FlatRoot dropped without put()
// (a failed step) is removed. So a RUN changes the directory in place and puts it back
// under the new chain, and a COPY's view is put back under the chain it showed. Two users
// of one chain at a time (stages on the same base) each get a copy of their own: the second
// take() rebuilds it. Directories live in the snapshot store's scratch (reclaimed if the
// process dies) and go away with the FlatRoots. Thread-safe.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "oci/descriptor.h"
#include "oci/diff_id.h"
#include "oci/digest.h"
#include "oci/store.h"
#include "overlay/snapshot_store.h"

namespace cbuild::builder {

class FlatRoots;

// One materialised rootfs, owned: removed on destruction unless given back with put().
class FlatRoot {
 public:
  FlatRoot(FlatRoot&& o) noexcept : dir_(std::move(o.dir_)) { o.dir_.clear(); }
  FlatRoot& operator=(FlatRoot&&) = delete;
  ~FlatRoot();
  const std::filesystem::path& dir() const noexcept { return dir_; }

 private:
  friend class FlatRoots;
  explicit FlatRoot(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;  // the scratch dir; the rootfs is dir_/"fs"
};

class FlatRoots {
 public:
  FlatRoots(oci::Store& store, overlay::SnapshotStore& snapshots, const oci::DiffIdRecords* diff_ids = nullptr);
  ~FlatRoots();
  FlatRoots(const FlatRoots&) = delete;
  FlatRoots& operator=(const FlatRoots&) = delete;

  // The rootfs of the stack `layers` / `diff_ids` (bottom first; empty: an empty directory).
  // Throws DataLoss when a layer does not decompress to its DiffID (nothing is kept then).
  FlatRoot take(const std::vector<oci::Descriptor>& layers, const std::vector<oci::Digest>& diff_ids);
  // Keeps `root` as the rootfs of `chain` (nullopt: the empty stack).
  void put(FlatRoot root, const std::optional<oci::Digest>& chain);

  static std::filesystem::path rootfs(const FlatRoot& r) { return r.dir() / "fs"; }

 private:
  oci::Store& store_;
  overlay::SnapshotStore& snapshots_;
  const oci::DiffIdRecords* diff_ids_;
  std::mutex mu_;
  std::multimap<std::string, std::filesystem::path> held_;  // chain ("" = empty) → scratch dir
};

}  // namespace cbuild::builder
