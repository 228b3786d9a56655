#include "builder/steps/fs_step.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <time.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/tee_ingest.h"
#include "oci/tar_reader.h"
#include "overlay/active_mount.h"
#include "overlay/differ.h"
#include "overlay/isolation.h"
#include "overlay/tree_diff.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

std::optional<oci::Digest> ensure_snapshots(FsContext& ctx, const LayerStack& stack) {
  if (stack.layers.size() != stack.diff_ids.size())
    throw Error(ErrorKind::Internal, "layer stack: layers and diff_ids differ in length");
  std::vector<oci::Digest> chains = overlay::chain_ids(stack.diff_ids);
  std::optional<oci::Digest> parent;
  for (std::size_t i = 0; i < chains.size(); ++i) {
    if (!ctx.snapshots.has(chains[i])) {
      const oci::Descriptor& d = stack.layers[i];
      const std::string what = "layer " + d.digest.str();
      // A snapshot is published under a chain ID only with the content that chain ID names,
      // so an image whose config lies about a layer cannot plant files under another image's
      // chain. The layer is checked while it is applied, unless a pull or load recorded what
      // this blob (its bytes verified as they are read) decompresses to.
      std::optional<oci::Digest> check = stack.diff_ids[i];
      if (auto known = ctx.diff_ids ? ctx.diff_ids->find(d.digest) : std::nullopt) {
        if (*known != stack.diff_ids[i])
          throw Error(ErrorKind::DataLoss, what + ": its uncompressed content has diff_id " + known->str() +
                                               ", but the image config says " + stack.diff_ids[i].str());
        check.reset();
      }
      oci::TarReader reader(ctx.store.open(d.digest), what, check);
      bool created = ctx.snapshots.ensure(chains[i], parent, reader);
      if (created && check && ctx.diff_ids) ctx.diff_ids->record(d.digest, *check);
    }
    parent = chains[i];
  }
  return parent;
}

// prune may remove a snapshot between ensure_snapshots() and the shared locks prepare() and
// view() take, after which prune leaves it alone. The build leases its blobs, so the snapshot
// is made again. One prune pass removes a snapshot once, so only prunes run back to back
// can need more than a round or two; the cap only guards against a store that loses
// snapshots for another reason.
void lock_snapshots(FsContext& ctx, const LayerStack& stack,
                    const std::function<void(const std::optional<oci::Digest>& top)>& lock) {
  for (int round = 1;; ++round) {
    std::optional<oci::Digest> top = ensure_snapshots(ctx, stack);
    try {
      lock(top);
      return;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::NotFound || round == 100) throw;
    }
  }
}

namespace {

// One streaming layer write (tar → DiffID → framed compression → digest → store), reusing
// and recording compressed frames through the frame cache.
oci::LayerResult write_layer(FsContext& ctx, const std::function<void(oci::TarWriter&)>& fill) {
  registry::BlobStream* upload = ctx.layer_upload ? ctx.layer_upload() : nullptr;
  auto ingest = ctx.store.begin_ingest();
  if (upload) ingest = oci::tee_ingest(std::move(ingest), *upload);
  oci::LayerWriterOptions lo = ctx.layer_options;
  std::vector<oci::FrameRecord> frames;
  if (ctx.frame_cache) {
    lo.cache = ctx.frame_cache;
    lo.on_frame = [&frames](const oci::FrameRecord& f) { frames.push_back(f); };
  }
  oci::LayerResult r;
  try {
    oci::LayerWriter writer(*ingest, lo);
    fill(writer.tar());
    r = writer.finish();
  } catch (...) {
    if (upload) upload->abandon();
    throw;
  }
  if (upload) upload->close(r.descriptor);
  if (ctx.frame_cache) ctx.frame_cache->record_layer(r.descriptor.digest, frames);
  return r;
}

// Gives `now` to every directory of `upper` whose mtime is `since` or later. Symlinks are
// neither followed nor changed.
void restamp_directories(const fs::path& upper, const struct timespec& since, std::int64_t now) {
  const struct timespec times[2] = {{.tv_sec = now, .tv_nsec = 0}, {.tv_sec = now, .tv_nsec = 0}};
  auto restamp = [&](const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) throw_errno("lstat", p.string());
    bool stamped = st.st_mtim.tv_sec > since.tv_sec || (st.st_mtim.tv_sec == since.tv_sec && st.st_mtim.tv_nsec >= since.tv_nsec);
    if (S_ISDIR(st.st_mode) && stamped &&
        ::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      throw_errno("utimensat", p.string());
  };
  for (fs::recursive_directory_iterator it(upper), end; it != end; ++it)
    if (!it->is_symlink() && it->is_directory()) restamp(it->path());
  restamp(upper);  // last: restamping its children does not touch a directory's own mtime
}

}  // namespace

namespace {

std::optional<oci::Digest> top_chain(const LayerStack& stack) {
  std::vector<oci::Digest> chains = overlay::chain_ids(stack.diff_ids);
  if (chains.empty()) return std::nullopt;
  return chains.back();
}

// run_fs_step at the chroot level: the parent's rootfs directory is changed in place and
// diffed against a record of its state before.
FsStepResult run_flat_step(FsContext& ctx, const LayerStack& parent,
                           const std::function<void(const fs::path& merged)>& mutate,
                           const std::vector<std::string>& exclude, std::optional<std::int64_t> now,
                           const std::function<void(const std::string&)>& warn) {
  FlatRoot root = ctx.flat->take(parent.layers, parent.diff_ids);
  const fs::path dir = FlatRoots::rootfs(root);
  // What overlay's copy-up does to a name the step writes, done to every linked name up front.
  overlay::separate_hard_links(dir, exclude);
  overlay::TreeState before = overlay::record_tree(dir, exclude);
  struct timespec started {};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &started);
  mutate(dir);
  if (now) restamp_directories(dir, started, *now);
  overlay::DiffOptions diff{.exclude = exclude, .warn = warn, .restore_setid_writes = !overlay::writes_keep_setid()};
  FsStepResult r{.layer = write_layer(ctx,
                                      [&](oci::TarWriter& tar) {
                                        overlay::walk_tree_diff(dir, before, diff, [&](const oci::TarEntry& e, int fd) {
                                          if (fd >= 0) tar.add_file(e, fd);
                                          else tar.add(e);
                                        });
                                      }),
                 .chain = {}};
  r.chain = overlay::chain_id(top_chain(parent), r.layer.diff_id);
  ctx.flat->put(std::move(root), r.chain);
  return r;
}

}  // namespace

FsStepResult run_fs_step(FsContext& ctx, const LayerStack& parent,
                         const std::function<void(const fs::path& merged)>& mutate,
                         const std::vector<std::string>& exclude, std::optional<std::int64_t> now,
                         const std::function<void(const std::string&)>& warn) {
  if (ctx.flat) return run_flat_step(ctx, parent, mutate, exclude, now, warn);
  std::optional<overlay::PreparedSnapshot> locked;
  lock_snapshots(ctx, parent, [&](const std::optional<oci::Digest>& top) { locked.emplace(ctx.snapshots.prepare(top)); });
  overlay::PreparedSnapshot& prepared = *locked;
  // The clock the kernel stamps files with: whatever has an mtime at or after this, the step
  // changed (or an archive it extracted dates in the future).
  struct timespec started {};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &started);
  {
    TempDir mnt;
    overlay::ActiveMount mount(prepared.mount_spec(), mnt.path() / "merged");
    mutate(mount.target());
    mount.unmount();
  }
  if (now) restamp_directories(prepared.upper(), started, *now);
  overlay::DiffOptions diff{.exclude = exclude, .warn = warn};
  FsStepResult r{.layer = write_layer(ctx, [&](oci::TarWriter& tar) { overlay::write_diff(prepared.upper(), tar, diff); }),
                 .chain = {}};
  r.chain = overlay::chain_id(prepared.parent(), r.layer.diff_id);
  ctx.snapshots.commit(prepared, r.chain, diff);
  return r;
}

FsStepResult run_streamed_step(FsContext& ctx, const LayerStack& parent,
                               const std::function<void(LayerTree& tree, const fs::path& view)>& build,
                               std::optional<std::int64_t> now) {
  std::optional<FsStepResult> r;
  auto run = [&](const fs::path& view, int view_fd) {
    LayerTree tree(view_fd, now);
    build(tree, view);
    // The content digests that files' stat data vouch for across builds: they identify the
    // layer (the memo) and key its frames (tar_writer.h known_content), so an unchanged file's
    // bytes are hashed once, for the DiffID, not twice.
    LayerTree::DigestOf settled;
    if (ctx.content_hashes) {
      ContentHashes& hashes = *ctx.content_hashes;
      settled = [&hashes](const FileStamp& s) -> std::optional<oci::Digest> {
        if (!hashes.settled(s)) return std::nullopt;
        return hashes.find(s);
      };
    }
    std::optional<oci::Digest> memo_key;
    if (ctx.layer_memo && settled) {
      if (auto described = tree.describe(settled)) memo_key = LayerMemo::key(*described, ctx.layer_options);
    }
    if (memo_key) {
      // Leased before use, so a concurrent prune cannot take the blob before the image is tagged.
      if (auto hit = ctx.layer_memo->find(*memo_key, ctx.store); hit && (!ctx.lease || ctx.lease->add(hit->descriptor.digest))) {
        r = FsStepResult{.layer = std::move(*hit), .chain = {}};
        return;
      }
    }
    LayerTree::DigestOf known = ctx.frame_cache ? settled : LayerTree::DigestOf{};
    r = FsStepResult{.layer = write_layer(ctx, [&](oci::TarWriter& tar) { tree.write(tar, known); }), .chain = {}};
    if (memo_key && tree.sources_unchanged()) ctx.layer_memo->put(*memo_key, r->layer);
  };
  if (parent.layers.empty()) {
    TempDir empty;
    run(empty.path(), -1);
  } else {
    with_view(ctx, parent, [&](const fs::path& view) {
      UniqueFd fd = open_file(view, O_RDONLY | O_DIRECTORY);
      run(view, fd.get());
    });
  }
  std::vector<oci::Digest> chains = overlay::chain_ids(parent.diff_ids);
  r->chain = overlay::chain_id(chains.empty() ? std::nullopt : std::optional<oci::Digest>(chains.back()), r->layer.diff_id);
  return std::move(*r);
}

void with_view(FsContext& ctx, const LayerStack& stack, const std::function<void(const fs::path& root)>& fn) {
  StackView view(ctx, stack);
  fn(view.root());
}

StackView::StackView(FsContext& ctx, const LayerStack& stack) {
  if (ctx.flat) {
    flat_roots_ = ctx.flat;
    flat_.emplace(ctx.flat->take(stack.layers, stack.diff_ids));
    flat_top_ = top_chain(stack);
    root_ = FlatRoots::rootfs(*flat_);
    return;
  }
  lock_snapshots(ctx, stack, [&](const std::optional<oci::Digest>& top) {
    if (top) view_.emplace(ctx.snapshots.view(*top));
  });
  if (!view_) {
    root_ = dir_.path();
    return;
  }
  mount_.emplace(view_->mount_spec(), dir_.path() / "view");
  root_ = mount_->target();
}

StackView::~StackView() {
  if (!flat_) return;
  try {
    flat_roots_->put(std::move(*flat_), flat_top_);
  } catch (...) {
  }
}

}  // namespace cbuild::builder
