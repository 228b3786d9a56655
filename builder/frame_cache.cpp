#include "builder/frame_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <sstream>

#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

StoreFrameCache::StoreFrameCache(fs::path root, std::string encoder_id)
    : root_(std::move(root)), encoder_id_(std::move(encoder_id)) {}

void StoreFrameCache::load_locked() {
  if (loaded_) return;
  loaded_ = true;
  std::error_code ec;
  for (fs::directory_iterator it(root_ / "cache" / "frames", ec), end; !ec && it != end; it.increment(ec)) {
    auto text = read_file_if_exists(it->path(), 64u << 20);
    if (!text) continue;
    std::string blob_hex = it->path().filename().string();
    std::istringstream in(*text);
    std::string line;
    // Each line: "<key>\t<offset> <size> <sha256 hex>"; the key itself contains one space.
    while (std::getline(in, line)) {
      auto tab = line.find('\t');
      if (tab == std::string::npos) continue;
      Location loc;
      loc.blob_hex = blob_hex;
      std::istringstream f(line.substr(tab + 1));
      if (!(f >> loc.offset >> loc.size >> loc.sha256_hex) || loc.sha256_hex.size() != 64) continue;
      index_.emplace(line.substr(0, tab), std::move(loc));
    }
  }
}

std::optional<std::string> StoreFrameCache::find(const std::string& key) {
  Location loc;
  {
    std::lock_guard lock(mu_);
    load_locked();
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    loc = it->second;
  }
  // Read outside the lock: workers fetch frames in parallel.
  fs::path blob = root_ / "blobs" / "sha256" / loc.blob_hex;
  int fd = ::open(blob.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  UniqueFd owner(fd);
  std::string bytes(loc.size, '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(loc.offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    got += static_cast<std::size_t>(n);
  }
  if (oci::Digest::of(bytes).hex() != loc.sha256_hex) return std::nullopt;
  std::lock_guard lock(mu_);
  ++hits_;
  return bytes;
}

void StoreFrameCache::put(const std::string& key, std::string_view compressed) {
  std::string sha = oci::Digest::of(compressed).hex();
  std::lock_guard lock(mu_);
  pending_[key] = {compressed.size(), std::move(sha)};
}

void StoreFrameCache::record_layer(const oci::Digest& blob, const std::vector<oci::FrameRecord>& frames) {
  std::string text;
  std::lock_guard lock(mu_);
  load_locked();
  for (const auto& f : frames) {
    std::string key = oci::frame_cache_key(encoder_id_, f.uncompressed_digest);
    std::string sha;
    if (auto p = pending_.find(key); p != pending_.end() && p->second.first == f.compressed_size) {
      sha = p->second.second;
      pending_.erase(p);
    } else if (auto i = index_.find(key); i != index_.end() && i->second.size == f.compressed_size) {
      sha = i->second.sha256_hex;  // a reused frame: same bytes, now also in this blob
    } else {
      continue;
    }
    Location loc{blob.hex(), f.compressed_offset, f.compressed_size, sha};
    text += key + "\t" + std::to_string(loc.offset) + " " + std::to_string(loc.size) + " " + sha + "\n";
    index_[key] = std::move(loc);  // the newest layer is the likeliest to survive a prune
  }
  if (text.empty()) return;
  make_dirs(root_ / "cache" / "frames");
  // No fsync (as for step records): the blob is durable already, and a lost or garbled record
  // is a miss — find() checks every frame's compressed sha256 before reusing it.
  write_file_atomic(root_ / "cache" / "frames" / blob.hex(), text, 0644, Durability::RenameOnly);
}

std::uint64_t StoreFrameCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

}  // namespace cbuild::builder
