// `cbuild prune [--all]` — removes blobs no tag reaches and no build-cache record holds, and
// the snapshots neither stacks on (with --all the build cache — step records, streamed-layer
// memos, remembered file hashes — and the RUN --mount=type=cache directories no build holds are
// cleared first). Blobs a running build, pull or mount holds a lease on are never removed, nor
// blobs younger than a minute (a writer may be about to tag them).
// The frame-cache and DiffID records of layers no longer stored go with them. Like every command that
// opens the store, it first reclaims what killed builds left (mounts, scratch, leases).
#include <iostream>
#include <set>

#include "builder/cache/cache.h"
#include "builder/cache/cache_mounts.h"
#include "builder/cache/content_hashes.h"
#include "builder/cache/frame_cache.h"
#include "builder/cache/layer_memo.h"
#include "cli/command.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "oci/diff_id.h"
#include "overlay/snapshot_store.h"

namespace cbuild::cli {
namespace {

struct PruneOptions {
  bool all = false;
  bool force = false;
};

int run_prune(const PruneOptions& o, const GlobalOptions& g) {
  auto store = open_store(g);
  builder::BuildCache cache(g.resolved_root());
  std::size_t records = o.all ? cache.clear() : 0;
  std::size_t cache_mounts = o.all ? builder::CacheMountStore(g.resolved_root()).clear() : 0;
  if (o.all) {
    // The rest of the build cache: streamed-layer memos and remembered file hashes. Either only
    // saves work, so a build running meanwhile just misses.
    records += builder::LayerMemo(g.resolved_root()).clear();
    std::error_code ec;
    std::filesystem::remove(builder::ContentHashes::store_file(g.resolved_root()), ec);
  }
  oci::GcOptions opts;
  opts.extra_roots = cache.referenced_blobs();
  auto res = store->gc(opts);
  for (auto& d : res.removed) std::cout << "Deleted: " << d.str() << "\n";
  builder::StoreFrameCache::remove_orphans(g.resolved_root());
  oci::DiffIdRecords(g.resolved_root()).remove_orphans();
  // Snapshots stay for every tagged image and every cache record (they are what the next
  // build stacks on); the rest go, unless a build or mount holds them.
  std::set<oci::Digest> keep;
  auto keep_stack = [&keep](const std::vector<oci::Digest>& diff_ids) {
    for (const auto& c : overlay::chain_ids(diff_ids)) keep.insert(c);
  };
  for (const auto& entry : store->index_entries()) {
    try {
      keep_stack(load_store_image(*store, entry).config.rootfs.diff_ids);
    } catch (const Error&) {
      // an entry that is not a loadable image (another tool's artifact) keeps nothing
    }
  }
  for (const auto& stack : cache.layer_stacks()) keep_stack(stack);
  std::size_t snapshots = overlay::SnapshotStore(g.resolved_root()).prune(keep);
  if (snapshots) std::cout << "Deleted snapshots: " << snapshots << "\n";
  if (records) std::cout << "Deleted build cache records: " << records << "\n";
  if (cache_mounts) std::cout << "Deleted cache mounts: " << cache_mounts << "\n";
  std::cout << "Total reclaimed space: " << human_size(static_cast<std::int64_t>(res.bytes_freed)) << "\n";
  return 0;
}

CommandRegistration reg{{
    .name = "prune",
    .help = "Remove unused blobs (and, with --all, the build cache)",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<PruneOptions>();
      app.add_flag("-a,--all", o->all, "Also remove the build cache, RUN cache mounts and the blobs only they hold");
      app.add_flag("-f,--force", o->force, "Do not prompt for confirmation (there is no prompt)");
      return [o, &g] { return run_prune(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
