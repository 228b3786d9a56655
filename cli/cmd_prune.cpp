// `cbuild prune [-a] [--keep-storage SIZE] [--filter until=DURATION]` — removes blobs no tag
// reaches and no build-cache record holds, and the snapshots neither stacks on. Build-cache step
// records go first when asked: with --keep-storage the least recently used ones (a record's last
// use is its last cache hit, cache.h) until the build cache is at most SIZE (its size as
// store_usage.h counts it: record files and the layer blobs and snapshots only records hold);
// with --filter until those unused for longer than DURATION; with both, only such old records,
// and only while the cache is over SIZE; with --all and neither, every record. --all also clears
// the streamed-layer memos, remembered file hashes and the RUN --mount=type=cache directories no
// build holds (whole: the limits choose step records only). Tagged images and everything they
// reach are never removed. Blobs a running build, pull or mount holds a lease on are never
// removed, nor blobs younger than a minute (a writer may be about to tag them): when those keep
// the cache over SIZE, or keep layer blobs of removed records for now, a note on stderr says so.
// The frame-cache and DiffID records of layers no longer stored go with them. Like every command that
// opens the store, it first reclaims what killed builds left (mounts, scratch, leases).
#include <algorithm>
#include <ctime>
#include <iostream>
#include <optional>
#include <set>

#include "builder/cache/cache.h"
#include "builder/cache/cache_mounts.h"
#include "builder/cache/content_hashes.h"
#include "builder/cache/frame_cache.h"
#include "builder/cache/layer_memo.h"
#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/prune_limits.h"
#include "cli/store_open.h"
#include "cli/store_usage.h"
#include "oci/base/error.h"
#include "oci/diff_id.h"
#include "overlay/snapshot_store.h"

namespace cbuild::cli {
namespace {

struct PruneOptions {
  bool all = false;
  bool force = false;
  std::string keep_storage;
  std::vector<std::string> filters;
};

struct Limits {
  std::optional<std::int64_t> keep_bytes;
  std::optional<std::chrono::nanoseconds> until;
  bool any() const { return keep_bytes || until; }
};

// Removes the step records the limits select; returns how many went. Their layer blobs are
// added to `layers`.
std::size_t trim_records(const oci::LayoutStore& store, builder::BuildCache& cache, const Limits& limits,
                         const GlobalOptions& g, std::set<oci::Digest>& layers) {
  // Sizes (a du of every snapshot) only when a limit needs them; until= goes by dates alone.
  StoreUsage usage;
  if (limits.keep_bytes)
    usage = StoreUsage::measure(store, g.resolved_root());
  else
    usage.records = cache.usage();
  auto now = static_cast<std::int64_t>(std::time(nullptr));
  std::vector<const builder::BuildCache::Usage*> candidates;
  for (const auto& r : usage.records)
    if (!limits.until || std::chrono::seconds(now - r.last_used) > *limits.until) candidates.push_back(&r);
  std::sort(candidates.begin(), candidates.end(), [](const auto* a, const auto* b) {
    return a->last_used != b->last_used ? a->last_used < b->last_used : a->key < b->key;
  });
  std::optional<CacheLedger> ledger;
  if (limits.keep_bytes) ledger.emplace(usage);
  std::size_t removed = 0;
  for (const auto* r : candidates) {
    if (ledger && ledger->bytes() <= *limits.keep_bytes) break;
    if (cache.remove(r->key)) ++removed;
    if (r->layer) layers.insert(*r->layer);
    if (ledger) ledger->drop(*r);
  }
  return removed;
}

Limits parse_limits(const PruneOptions& o) {
  Limits l;
  try {
    if (!o.keep_storage.empty()) l.keep_bytes = parse_keep_storage(o.keep_storage);
    l.until = parse_prune_filters(o.filters).until;
  } catch (const Error& e) {
    throw UsageError(e);
  }
  return l;
}

int run_prune(const PruneOptions& o, const GlobalOptions& g) {
  Limits limits = parse_limits(o);
  auto store = open_store(g);
  builder::BuildCache cache(g.resolved_root());
  std::set<oci::Digest> trimmed_layers;
  std::size_t records = limits.any()  ? trim_records(*store, cache, limits, g, trimmed_layers)
                        : o.all       ? cache.clear()
                                      : 0;
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
  // A layer of a removed record that nothing holds now but gc kept (younger than a minute, or
  // leased by a running build) goes with a later prune: say so rather than let it look freed.
  if (!trimmed_layers.empty()) {
    std::set<oci::Digest> held(opts.extra_roots.begin(), opts.extra_roots.end());
    std::vector<oci::Digest> tags;
    for (const auto& e : store->index_entries()) tags.push_back(e.digest);
    held.merge(store->reachable(tags));
    std::size_t left = 0;
    std::int64_t left_bytes = 0;
    for (const auto& d : trimmed_layers)
      if (auto size = store->stat(d); size && !held.count(d)) {
        ++left;
        left_bytes += *size;
      }
    if (left)
      std::cerr << "note: " << left << " layer blob(s) of removed records (" << human_size(left_bytes)
                << ") are younger than a minute or in use by a running build; a later prune removes them\n";
  }
  if (limits.keep_bytes) {
    std::int64_t left = CacheLedger(StoreUsage::measure(*store, g.resolved_root())).bytes();
    if (left > *limits.keep_bytes)
      std::cerr << "note: the build cache still takes " << human_size(left) << ", more than --keep-storage "
                << o.keep_storage << ": "
                << (limits.until ? "records used within --filter until, " : "")
                << "blobs younger than a minute and what running builds hold stay\n";
  }
  return 0;
}

CommandRegistration reg{{
    .name = "prune",
    .help = "Remove unused blobs and snapshots (and build cache: --all, --keep-storage, --filter)",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<PruneOptions>();
      app.add_flag("-a,--all", o->all, "Also remove the build cache, RUN cache mounts and the blobs only they hold");
      app.add_flag("-f,--force", o->force, "Do not prompt for confirmation (there is no prompt)");
      app.add_option("--keep-storage", o->keep_storage,
                     "Remove least recently used build cache until it takes at most SIZE (10GB, 512MB: binary units)")
          ->type_name("SIZE");
      app.add_option("--filter", o->filters, "Only remove build cache unused for longer than until=DURATION (24h, 90m)")
          ->type_name("until=DURATION")
          ->allow_extra_args(false);
      return [o, &g] { return run_prune(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
