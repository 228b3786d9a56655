#include "cli/store_usage.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string_view>
#include <utility>

#include "cli/store_open.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/unique_fd.h"
#include "overlay/snapshot_store.h"

namespace cbuild::cli {
namespace fs = std::filesystem;

namespace {

using InodeSet = std::set<std::pair<dev_t, ino_t>>;

std::int64_t du(const fs::path& p, InodeSet& seen) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return 0;  // gone meanwhile
  std::int64_t total = 0;
  if (seen.insert({st.st_dev, st.st_ino}).second) total += static_cast<std::int64_t>(st.st_blocks) * 512;
  if (S_ISDIR(st.st_mode)) {
    std::error_code ec;
    for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) total += du(it->path(), seen);
  }
  return total;
}

// The chain IDs of a record's stack, each once.
std::set<oci::Digest> chains_of(const builder::BuildCache::Usage& r) {
  auto v = overlay::chain_ids(r.diff_ids);
  return {v.begin(), v.end()};
}

// A snapshot's stack, top first: the chain IDs its lower dirs are named after.
std::vector<oci::Digest> stack_of_chain(const overlay::SnapshotStore& snaps, const oci::Digest& chain) {
  std::vector<oci::Digest> out;
  try {
    for (const auto& lower : snaps.lowers(chain))
      if (auto d = oci::Digest::try_parse("sha256:" + fs::path(lower).parent_path().filename().string()))
        out.push_back(*d);
  } catch (const Error&) {
    // a pin whose snapshot is gone holds nothing
  }
  return out;
}

}  // namespace

std::int64_t disk_usage(const fs::path& path) {
  InodeSet seen;
  return du(path, seen);
}

StoreUsage StoreUsage::measure(const oci::LayoutStore& store, const fs::path& root) {
  StoreUsage u;
  std::vector<oci::Digest> roots;
  for (const auto& entry : store.index_entries()) {
    roots.push_back(entry.digest);
    Image img{.names = names_of(store, entry.digest), .id = entry.digest};
    std::int64_t bytes = 0;
    for (const auto& d : store.reachable({entry.digest})) {
      struct stat st {};
      if (::lstat(store.blob_path(d).c_str(), &st) == 0) bytes += static_cast<std::int64_t>(st.st_blocks) * 512;
    }
    img.bytes = bytes;
    try {
      StoreImage si = load_store_image(store, entry);
      img.id = si.config_digest;
      for (const auto& c : overlay::chain_ids(si.config.rootfs.diff_ids)) u.image_chains.insert(c);
    } catch (const Error&) {
      // an entry that is not a loadable image (another tool's artifact) has no snapshots
    }
    u.images.push_back(std::move(img));
  }
  u.image_blobs = store.reachable(roots);

  std::error_code ec;
  fs::path blobs = root / "blobs" / "sha256";
  for (fs::directory_iterator it(blobs, ec), end; !ec && it != end; it.increment(ec)) {
    auto d = oci::Digest::try_parse("sha256:" + it->path().filename().string());
    struct stat st {};
    if (!d || ::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    u.blob_bytes[*d] = static_cast<std::int64_t>(st.st_blocks) * 512;
  }

  u.records = builder::BuildCache(root).usage();
  std::set<oci::Digest> record_chains;
  for (const auto& r : u.records) record_chains.merge(chains_of(r));

  overlay::SnapshotStore snaps(root);
  for (const auto& name : snaps.pins())
    if (auto chain = snaps.pinned(name))
      for (const auto& c : stack_of_chain(snaps, *chain)) u.pinned_chains.insert(c);
  for (const auto& chain : snaps.list()) {
    Snapshot s{.bytes = disk_usage(snaps.fs_dir(chain).parent_path())};
    s.held_by = u.image_chains.count(chain)      ? "image"
                : u.pinned_chains.count(chain)   ? "mount"
                : record_chains.count(chain)     ? "cache"
                                                 : "none";
    u.snapshots[chain] = std::move(s);
  }

  fs::path mounts = root / "cache" / "mounts";
  for (fs::directory_iterator key(mounts, ec), end; !ec && key != end; key.increment(ec)) {
    if (!key->is_directory()) continue;
    std::string id = read_file_if_exists(key->path() / "id", 4096).value_or("");
    if (!id.empty() && id.back() == '\n') id.pop_back();
    std::error_code ec2;
    for (fs::directory_iterator inst(key->path(), ec2), end2; !ec2 && inst != end2; inst.increment(ec2)) {
      // .new-* is a cache being made (cache_mounts.h); it becomes an instance's data when done.
      if (!inst->is_directory() || inst->path().filename().string().starts_with(".")) continue;
      CacheMount m{.dir = inst->path(), .id = id, .bytes = disk_usage(inst->path())};
      // Busy while a RUN holds its lock in any mode; the probe takes nothing a RUN waits for long.
      int raw = ::open((inst->path() / "lock").c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
      if (raw >= 0) {
        UniqueFd fd(raw);
        m.busy = ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0;
      }
      u.cache_mounts.push_back(std::move(m));
    }
  }
  return u;
}

std::int64_t StoreUsage::record_bytes(const builder::BuildCache::Usage& r, bool& shared) const {
  shared = false;
  std::int64_t bytes = r.file_bytes;
  if (!r.layer) return bytes;
  if (image_blobs.count(*r.layer)) {
    shared = true;
    return bytes;
  }
  for (const auto& other : records)
    if (other.key != r.key && other.layer == r.layer) shared = true;
  if (!shared)
    if (auto it = blob_bytes.find(*r.layer); it != blob_bytes.end()) bytes += it->second;
  return bytes;
}

std::vector<UsageRow> StoreUsage::rows() const {
  UsageRow img{.type = "Images", .count = images.size()};
  for (const auto& d : image_blobs)
    if (auto it = blob_bytes.find(d); it != blob_bytes.end()) img.bytes += it->second;

  UsageRow cache{.type = "Build cache", .count = records.size()};
  cache.bytes = cache.reclaimable = CacheLedger(*this).bytes();

  UsageRow snaps{.type = "Snapshots"};
  for (const auto& [chain, s] : snapshots) {
    if (s.held_by == "image") {
      img.bytes += s.bytes;
    } else if (s.held_by != "cache") {
      ++snaps.count;
      snaps.bytes += s.bytes;
      if (s.held_by == "none") snaps.reclaimable += s.bytes;
    }
  }

  UsageRow mounts{.type = "Cache mounts", .count = cache_mounts.size()};
  for (const auto& m : cache_mounts) {
    mounts.bytes += m.bytes;
    if (!m.busy) mounts.reclaimable += m.bytes;
  }

  std::set<oci::Digest> record_blobs;
  for (const auto& r : records)
    if (r.layer) record_blobs.insert(*r.layer);
  UsageRow unused{.type = "Unused blobs"};
  for (const auto& [d, bytes] : blob_bytes) {
    if (image_blobs.count(d) || record_blobs.count(d)) continue;
    ++unused.count;
    unused.bytes += bytes;
  }
  unused.reclaimable = unused.bytes;
  return {img, cache, snaps, mounts, unused};
}

CacheLedger::CacheLedger(const StoreUsage& usage) : usage_(usage) {
  for (const auto& r : usage.records) {
    bytes_ += r.file_bytes;
    if (r.layer && !usage.image_blobs.count(*r.layer) && blob_refs_[*r.layer]++ == 0)
      if (auto it = usage.blob_bytes.find(*r.layer); it != usage.blob_bytes.end()) bytes_ += it->second;
    for (const auto& c : chains_of(r)) {
      auto it = usage.snapshots.find(c);
      bool counted = it != usage.snapshots.end() && it->second.held_by == "cache";
      if (chain_refs_[c]++ == 0 && counted) bytes_ += it->second.bytes;
    }
  }
}

void CacheLedger::drop(const builder::BuildCache::Usage& r) {
  bytes_ -= r.file_bytes;
  if (r.layer && !usage_.image_blobs.count(*r.layer) && --blob_refs_[*r.layer] == 0)
    if (auto it = usage_.blob_bytes.find(*r.layer); it != usage_.blob_bytes.end()) bytes_ -= it->second;
  for (const auto& c : chains_of(r)) {
    auto it = usage_.snapshots.find(c);
    bool counted = it != usage_.snapshots.end() && it->second.held_by == "cache";
    if (--chain_refs_[c] == 0 && counted) bytes_ -= it->second.bytes;
  }
}

}  // namespace cbuild::cli
