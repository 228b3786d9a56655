#include "builder/steps/flat_roots.h"

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/tar_reader.h"
#include "overlay/applier.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {
void remove_quietly(const fs::path& p) noexcept {
  try {
    if (!p.empty()) remove_tree(p);
  } catch (...) {
  }
}
}  // namespace

FlatRoot::~FlatRoot() { remove_quietly(dir_); }

FlatRoots::FlatRoots(oci::Store& store, overlay::SnapshotStore& snapshots, const oci::DiffIdRecords* diff_ids)
    : store_(store), snapshots_(snapshots), diff_ids_(diff_ids) {}

FlatRoots::~FlatRoots() {
  for (auto& [chain, dir] : held_) remove_quietly(dir);
}

FlatRoot FlatRoots::take(const std::vector<oci::Descriptor>& layers, const std::vector<oci::Digest>& diff_ids) {
  if (layers.size() != diff_ids.size()) throw Error(ErrorKind::Internal, "layer stack: layers and diff_ids differ in length");
  std::vector<oci::Digest> chains = overlay::chain_ids(diff_ids);
  std::optional<FlatRoot> root;
  std::size_t have = 0;  // layers already in `root`
  {
    std::lock_guard lock(mu_);
    for (std::size_t n = chains.size() + 1; n-- > 0;) {
      auto it = held_.find(n == 0 ? std::string() : chains[n - 1].str());
      if (it == held_.end()) continue;
      root.emplace(FlatRoot(it->second));
      held_.erase(it);
      have = n;
      break;
    }
  }
  if (!root) {
    root.emplace(FlatRoot(snapshots_.scratch("flat")));
    make_dirs(rootfs(*root));
  }
  for (std::size_t i = have; i < layers.size(); ++i) {
    const oci::Descriptor& d = layers[i];
    const std::string what = "layer " + d.digest.str();
    std::optional<oci::Digest> check = diff_ids[i];
    if (auto known = diff_ids_ ? diff_ids_->find(d.digest) : std::nullopt) {
      if (*known != diff_ids[i])
        throw Error(ErrorKind::DataLoss, what + ": its uncompressed content has diff_id " + known->str() +
                                             ", but the image config says " + diff_ids[i].str());
      check.reset();
    }
    oci::TarReader reader(store_.open(d.digest), what, check);
    overlay::apply_layer(reader, rootfs(*root), overlay::ApplyOptions{.mode = overlay::ApplyMode::Flatten});
    if (check && diff_ids_) diff_ids_->record(d.digest, *check);
  }
  return std::move(*root);
}

void FlatRoots::put(FlatRoot root, const std::optional<oci::Digest>& chain) {
  std::lock_guard lock(mu_);
  held_.emplace(chain ? chain->str() : std::string(), root.dir_);
  root.dir_.clear();
}

}  // namespace cbuild::builder
