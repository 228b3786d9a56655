// Filesystem steps: the part of COPY, ADD, RUN and WORKDIR that turns "change the rootfs" into
// a layer. The parent's layers get snapshots (applied from their blobs when missing), a
// writable overlay stack is mounted, `mutate` changes the merged view (writes files, or runs
// the sandbox), the mount goes away, the upper dir is diffed into one streaming layer write
// (tar → DiffID → framed compression → digest → store), and the upper then *becomes* the new
// snapshot by rename (run_streamed_step skips the mount, the upper and the snapshot for steps
// that only add files: see layer_tree.h). On any failure nothing stays mounted and the upper is discarded; the
// store only ever holds complete, verified blobs.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "builder/cache/content_hashes.h"
#include "builder/cache/frame_cache.h"
#include "builder/cache/layer_memo.h"
#include "builder/steps/flat_roots.h"
#include "builder/steps/layer_tree.h"
#include "oci/base/fs.h"
#include "oci/descriptor.h"
#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "oci/diff_id.h"
#include "oci/store.h"
#include "overlay/active_mount.h"
#include "overlay/snapshot_store.h"
#include "registry-client/blob_stream.h"

namespace cbuild::builder {

// The layers of an image so far, bottom first.
struct LayerStack {
  std::vector<oci::Descriptor> layers;
  std::vector<oci::Digest> diff_ids;
};

struct FsContext {
  oci::Store& store;
  overlay::SnapshotStore& snapshots;
  oci::LayerWriterOptions layer_options;  // codec, level, SOURCE_DATE_EPOCH; cache set per write
  StoreFrameCache* frame_cache = nullptr;
  ContentHashes* content_hashes = nullptr;  // build-context files' hashes by stat data
  LayerMemo* layer_memo = nullptr;          // streamed layers the store already has
  oci::Lease* lease = nullptr;              // the build's: a layer found in the memo joins it
  const oci::DiffIdRecords* diff_ids = nullptr;  // layers known to decompress to a DiffID
  // Set at the chroot isolation level (overlay/isolation.h): nothing is mounted; run_fs_step,
  // run_streamed_step and the views work on plain rootfs directories instead of snapshots, and
  // a step's layer is the directory's diff against its state before (overlay/tree_diff.h).
  FlatRoots* flat = nullptr;
  // Set for the steps of a pushed image (--push): a stream that uploads the layer being
  // written to the registry it goes to, beside the build (registry-client/blob_stream.h),
  // owned by the caller; null for none. It gets the compressed bytes as they are made and,
  // once the blob is in the store, its descriptor (close()); a write that fails abandons it.
  std::function<registry::BlobStream*()> layer_upload;
};

// Makes sure every layer of `stack` has its snapshot; returns the top chain ID (nullopt for
// an empty stack). Layers are read from the store, verified, and applied in overlay form;
// each must decompress to its diff_id (DataLoss otherwise, and no snapshot): checked while
// it is applied, or from ctx.diff_ids' record when a pull or load already checked the blob.
std::optional<oci::Digest> ensure_snapshots(FsContext& ctx, const LayerStack& stack);

// ensure_snapshots(), then `lock(top)`, which takes the stack's shared locks (prepare, view):
// a snapshot a concurrent prune removed in between (lock throws NotFound) is made again.
void lock_snapshots(FsContext& ctx, const LayerStack& stack,
                    const std::function<void(const std::optional<oci::Digest>& top)>& lock);

struct FsStepResult {
  oci::LayerResult layer;
  oci::Digest chain;  // of the stack with the new layer on top
};

// Runs `mutate(merged_dir)` on a writable stack over `parent` and commits the change as a
// layer and a snapshot. `exclude` lists paths (relative, e.g. "proc", "etc/hosts") that the
// mutation may create as mount-point stubs: they stay out of the layer and the snapshot.
// `now`, when set: the directories the mutation created or changed (those the kernel stamped
// with the clock during the step; also any an archive dates after the step began) get this
// mtime instead, as LayerTree's `now`. `warn`, when set, hears what the differ cannot say
// exactly about the change (DiffOptions::warn: a RUN's changed rootless placeholders).
FsStepResult run_fs_step(FsContext& ctx, const LayerStack& parent,
                         const std::function<void(const std::filesystem::path& merged)>& mutate,
                         const std::vector<std::string>& exclude = {}, std::optional<std::int64_t> now = std::nullopt,
                         const std::function<void(const std::string&)>& warn = {});

// COPY/ADD/WORKDIR without a mount or a file on disk: `build(tree, view)` records the change
// in a LayerTree (layer_tree.h) over a read-only view of `parent` (`view` is its root; an
// empty directory for an empty parent), and the tree is streamed as the layer, giving the
// digest run_fs_step would give for the same change. NO snapshot is recorded for the new
// chain: ensure_snapshots() applies the blob when a later step first needs the files. With a
// layer memo, a tree the store already holds as a layer is not written again (layer_memo.h).
// `now`: LayerTree's time for what the step creates (the clock when unset).
FsStepResult run_streamed_step(FsContext& ctx, const LayerStack& parent,
                               const std::function<void(LayerTree& tree, const std::filesystem::path& view)>& build,
                               std::optional<std::int64_t> now = std::nullopt);

// A read-only merged view of `stack` for the lifetime of the call (COPY --from, RUN
// --mount=from). An empty stack shows an empty directory.
void with_view(FsContext& ctx, const LayerStack& stack, const std::function<void(const std::filesystem::path& root)>& fn);

// The same view as an owner, for as long as the object lives (RUN --mount from=, where
// several views stay open around one RUN). The destructor unmounts and releases the
// snapshot locks; it never throws. Not movable (the mount's directory is its member).
class StackView {
 public:
  StackView(FsContext& ctx, const LayerStack& stack);
  ~StackView();
  StackView(const StackView&) = delete;
  StackView& operator=(const StackView&) = delete;
  const std::filesystem::path& root() const noexcept { return root_; }

 private:
  std::optional<overlay::PreparedSnapshot> view_;
  TempDir dir_;
  std::optional<overlay::ActiveMount> mount_;
  std::filesystem::path root_;
  // At the chroot level: the stack's rootfs, given back to ctx.flat under `flat_top_`.
  FlatRoots* flat_roots_ = nullptr;
  std::optional<FlatRoot> flat_;
  std::optional<oci::Digest> flat_top_;
};

}  // namespace cbuild::builder
