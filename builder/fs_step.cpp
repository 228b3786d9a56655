#include "builder/fs_step.h"

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/tar_reader.h"
#include "overlay/active_mount.h"
#include "overlay/differ.h"

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
      oci::TarReader reader(ctx.store.open(d.digest), "layer " + d.digest.str());
      ctx.snapshots.ensure(chains[i], parent, reader);
    }
    parent = chains[i];
  }
  return parent;
}

FsStepResult run_fs_step(FsContext& ctx, const LayerStack& parent,
                         const std::function<void(const fs::path& merged)>& mutate,
                         const std::vector<std::string>& exclude) {
  std::optional<oci::Digest> parent_chain = ensure_snapshots(ctx, parent);
  overlay::PreparedSnapshot prepared = ctx.snapshots.prepare(parent_chain);
  {
    TempDir mnt;
    overlay::ActiveMount mount(prepared.mount_spec(), mnt.path() / "merged");
    mutate(mount.target());
    mount.unmount();
  }
  overlay::DiffOptions diff{.exclude = exclude};
  auto ingest = ctx.store.begin_ingest();
  oci::LayerWriterOptions lo = ctx.layer_options;
  std::vector<oci::FrameRecord> frames;
  if (ctx.frame_cache) {
    lo.cache = ctx.frame_cache;
    lo.on_frame = [&frames](const oci::FrameRecord& f) { frames.push_back(f); };
  }
  oci::LayerWriter writer(*ingest, lo);
  overlay::write_diff(prepared.upper(), writer.tar(), diff);
  FsStepResult r{.layer = writer.finish(), .chain = {}};
  if (ctx.frame_cache) ctx.frame_cache->record_layer(r.layer.descriptor.digest, frames);
  r.chain = overlay::chain_id(parent_chain, r.layer.diff_id);
  ctx.snapshots.commit(prepared, r.chain, diff);
  return r;
}

void with_view(FsContext& ctx, const LayerStack& stack, const std::function<void(const fs::path& root)>& fn) {
  StackView view(ctx, stack);
  fn(view.root());
}

StackView::StackView(FsContext& ctx, const LayerStack& stack) {
  std::optional<oci::Digest> top = ensure_snapshots(ctx, stack);
  if (!top) {
    root_ = dir_.path();
    return;
  }
  view_.emplace(ctx.snapshots.view(*top));
  mount_.emplace(view_->mount_spec(), dir_.path() / "view");
  root_ = mount_->target();
}

}  // namespace cbuild::builder
