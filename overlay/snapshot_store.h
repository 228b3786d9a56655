// SnapshotStore — extracted layers under $ROOT/snapshots/, keyed by chain ID, in overlay form
// (whiteouts as 0/0 devices, opaque xattrs), stacked as lowerdirs.
//
//   $ROOT/snapshots/<chain hex>/fs       the layer's files
//   $ROOT/snapshots/<chain hex>/parent   the parent's chain ID ("sha256:…"); absent for a base
//   $ROOT/snapshots/<chain hex>/lock     flock: shared while mounted, exclusive to prune
//   $ROOT/snapshots/.xattrs              "trusted" or "user": the overlay xattr namespace of
//                                        the snapshots (root vs rootless, user_namespace.h);
//                                        a store of the other kind is refused
//   $ROOT/snapshots/.setid-records     rootless: present once every snapshot's setuid/setgid
//                                        files carry their records (override_stat.h; made
//                                        when a store of older snapshots is first opened)
//   $ROOT/snapshots/.tmp/                staging and active upper/work dirs (same filesystem,
//                                        so a commit is a rename), named after their owner
//                                        (oci/base/owner.h): opening the store reclaims a dead
//                                        process's
// Nothing here is a symlink, so the store survives `cp -a` to another place.
//
// Creation is atomic: a snapshot is built in .tmp/ and renamed into place; a concurrent
// creator of the same chain loses the rename and drops its copy. prepare()/view() return a
// description (MountSpec) plus the locks that keep the lowers from being pruned; ActiveMount
// performs it, so a description can be checked or logged before anything is mounted. After a
// step the upper *becomes* the next snapshot by rename (commit), stripped of overlay-private
// xattrs and mount-point stubs first.
// Thread-safe: threads creating the same chain at once (two build stages on one base, or two
// steps that give the same layer) are serialised in-process, so the later one finds the
// snapshot and reuses it (ensure/commit return false) instead of extracting it twice or
// failing; cross-process safety comes from rename and flock.
// Throws cbuild::Error naming the chain or path.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "oci/base/keyed_mutex.h"
#include "oci/base/unique_fd.h"
#include "oci/digest.h"
#include "oci/tar_reader.h"
#include "overlay/applier.h"
#include "overlay/differ.h"
#include "overlay/mount_spec.h"

namespace cbuild::overlay {

// ChainID(L0) = DiffID(L0); ChainID(L0…Ln) = sha256(ChainID(L0…Ln-1) + " " + DiffID(Ln)).
oci::Digest chain_id(const std::optional<oci::Digest>& parent_chain, const oci::Digest& diff_id);
// The chain IDs of every prefix of `diff_ids` (same length; the last is the image's top).
std::vector<oci::Digest> chain_ids(const std::vector<oci::Digest>& diff_ids);

// A prepared (writable) or viewed (read-only) snapshot stack. Owns its scratch directory and
// the shared locks on its lowers; destroying it removes the scratch (never while mounted:
// destroy the ActiveMount first). Move-only.
class PreparedSnapshot {
 public:
  PreparedSnapshot(PreparedSnapshot&&) noexcept = default;
  PreparedSnapshot& operator=(PreparedSnapshot&&) = delete;
  ~PreparedSnapshot();

  const MountSpec& mount_spec() const noexcept { return spec_; }
  // The upper dir (empty path for a view): the changeset of the step.
  std::filesystem::path upper() const { return spec_.upper; }
  const std::optional<oci::Digest>& parent() const noexcept { return parent_; }

 private:
  friend class SnapshotStore;
  PreparedSnapshot() = default;
  std::filesystem::path scratch_;
  MountSpec spec_;
  std::optional<oci::Digest> parent_;
  std::vector<UniqueFd> locks_;
};

class SnapshotStore {
 public:
  // `store_root` is $ROOT; snapshots/ and snapshots/.tmp are created when missing.
  explicit SnapshotStore(std::filesystem::path store_root);

  bool has(const oci::Digest& chain) const;
  std::filesystem::path fs_dir(const oci::Digest& chain) const;
  // Lower dirs for `chain`, top first, following parent links. Throws NotFound.
  std::vector<std::string> lowers(const oci::Digest& chain) const;

  // Makes sure snapshot `chain` exists: when absent, applies `reader`'s entries (overlay mode)
  // on top of nothing in a staging dir and renames it in. `parent` must exist already.
  // Returns true when it created the snapshot. Nothing is renamed in unless `reader` reached
  // its end without throwing, so a reader given the layer's DiffID (TarReader) guarantees that
  // the snapshot under `chain` holds what `chain` names: callers pass it, and an existing
  // snapshot is trusted without a check.
  bool ensure(const oci::Digest& chain, const std::optional<oci::Digest>& parent, oci::TarReader& reader,
              ApplyOptions options = {});
  // Same with a custom filler (e.g. COPY writing straight into the new snapshot).
  bool ensure_with(const oci::Digest& chain, const std::optional<oci::Digest>& parent,
                   const std::function<void(const std::filesystem::path& fs)>& fill);

  // A writable stack on top of `parent` (nullopt: an empty base).
  PreparedSnapshot prepare(const std::optional<oci::Digest>& parent);
  // A read-only stack of `chain`.
  PreparedSnapshot view(const oci::Digest& chain);
  // Turns the (unmounted) upper of `prepared` into snapshot `chain` by rename, after
  // strip_for_commit(upper, strip). Returns false when `chain` already existed (the upper is
  // then discarded).
  bool commit(PreparedSnapshot& prepared, const oci::Digest& chain, const DiffOptions& strip = {});

  // Persistent read-only views (`cbuild mount`): $ROOT/mounts/<name>/ holds the chain ID
  // ("chain"), an empty lower when needed and the mount point "merged". pin() records it and
  // returns the view's MountSpec and target; prune() keeps pinned chains. `name` is
  // [A-Za-z0-9_.-]+ (not starting with '.'): InvalidArgument otherwise.
  struct Pin {
    MountSpec spec;
    std::filesystem::path target;
  };
  Pin pin(const oci::Digest& chain, const std::string& name);
  std::optional<oci::Digest> pinned(const std::string& name) const;
  std::filesystem::path pin_dir(const std::string& name) const;
  // Removes the pin's directory (the caller has unmounted it). Missing is fine.
  void unpin(const std::string& name);
  // Names of every pin.
  std::vector<std::string> pins() const;

  std::vector<oci::Digest> list() const;
  // Removes every snapshot whose chain is not in `keep` and that nobody has mounted (its lock
  // is free), plus stale scratch dirs of dead processes. Returns the number removed.
  std::size_t prune(const std::set<oci::Digest>& keep);

  // A new private directory in .tmp/ (mode 0700), named after this process so that a later
  // opener of the store reclaims it if the process dies; the caller removes it when done.
  std::filesystem::path scratch(std::string_view kind) const { return new_scratch(kind); }

 private:
  std::filesystem::path snap_dir(const oci::Digest& chain) const;
  std::filesystem::path new_scratch(std::string_view kind) const;
  void install(const std::filesystem::path& staging, const oci::Digest& chain,
               const std::optional<oci::Digest>& parent, bool& created);
  std::vector<UniqueFd> lock_stack(const oci::Digest& chain) const;
  void check_xattr_namespace() const;
  void record_setid_files() const;

  std::filesystem::path root_;    // $ROOT/snapshots
  std::filesystem::path mounts_;  // $ROOT/mounts
  KeyedMutex creating_;           // by chain hex: one creator per chain in this process
};

}  // namespace cbuild::overlay
