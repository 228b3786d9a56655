#include "builder/cache/frame_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "oci/base/error.h"
#include "oci/base/cold_read.h"
#include "oci/base/fs.h"
#include "oci/checksum.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {
constexpr std::string_view kCheckpointTag = "ckpt:";

// "crc32:<8 hex>", the check field of both kinds of line.
std::string crc_field(std::uint32_t crc) {
  char check[16];
  std::snprintf(check, sizeof check, "crc32:%08x", crc);
  return check;
}

std::string crc_text(std::string_view bytes) {
  return crc_field(oci::crc32(std::as_bytes(std::span(bytes.data(), bytes.size()))));
}

// "ckpt:<chain>\t<uncompressed state>\t<compressed state>\tcrc32:<8 hex of what precedes it>"
std::string checkpoint_line(const std::string& chain, const oci::HashCheckpoint& cp) {
  std::string body = std::string(kCheckpointTag) + chain + "\t" + cp.uncompressed.to_text() + "\t" + cp.compressed.to_text();
  return body + "\t" + crc_text(body) + "\n";
}

bool parse_checkpoint(std::string_view line, std::string& chain, oci::HashCheckpoint& cp) {
  auto last = line.rfind('\t');
  if (last == std::string_view::npos || crc_text(line.substr(0, last)) != line.substr(last + 1)) return false;
  std::string_view body = line.substr(kCheckpointTag.size(), last - kCheckpointTag.size());
  auto t1 = body.find('\t');
  auto t2 = t1 == std::string_view::npos ? t1 : body.find('\t', t1 + 1);
  if (t2 == std::string_view::npos) return false;
  auto u = oci::Sha256::State::parse(body.substr(t1 + 1, t2 - t1 - 1));
  auto c = oci::Sha256::State::parse(body.substr(t2 + 1));
  if (!u || !c) return false;
  chain.assign(body.substr(0, t1));
  cp = oci::HashCheckpoint{std::move(*u), std::move(*c)};
  return true;
}
}  // namespace

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
    // Each line: "<key>\t<offset> <size> crc32:<8 hex>"; the key itself contains one space.
    // Lines of other forms (older cbuild versions checked frames by sha256) are skipped: a miss.
    while (std::getline(in, line)) {
      if (line.compare(0, kCheckpointTag.size(), kCheckpointTag) == 0) {
        std::string chain;
        oci::HashCheckpoint cp;
        if (parse_checkpoint(line, chain, cp)) checkpoints_.insert_or_assign(std::move(chain), std::move(cp));
        continue;
      }
      auto tab = line.find('\t');
      if (tab == std::string::npos) continue;
      Location loc;
      loc.blob_hex = blob_hex;
      std::istringstream f(line.substr(tab + 1));
      std::string check;
      if (!(f >> loc.offset >> loc.size >> check) || check.size() != 14 || check.compare(0, 6, "crc32:") != 0) continue;
      char* end = nullptr;
      unsigned long v = std::strtoul(check.c_str() + 6, &end, 16);
      if (end != check.c_str() + check.size()) continue;
      loc.crc32 = static_cast<std::uint32_t>(v);
      index_.emplace(line.substr(0, tab), std::move(loc));
    }
  }
}

bool StoreFrameCache::find(const std::string& key, std::string& out) {
  Location loc;
  {
    std::lock_guard lock(mu_);
    load_locked();
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    loc = it->second;
  }
  // Read outside the lock: workers fetch frames in parallel.
  fs::path blob = root_ / "blobs" / "sha256" / loc.blob_hex;
  int fd = ::open(blob.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  UniqueFd owner(fd);
  out.resize(loc.size);
  try {
    // Blobs are written with O_DIRECT (oci/ingest.h), so the one a frame comes from is often
    // not in the page cache: read it at disk speed rather than through it.
    ColdAwareReader reader(fd, blob.string());
    if (reader.pread(reinterpret_cast<std::byte*>(out.data()), out.size(), loc.offset) != out.size()) return false;
  } catch (const Error&) {
    return false;
  }
  if (oci::crc32(std::as_bytes(std::span(out.data(), out.size()))) != loc.crc32) return false;
  std::lock_guard lock(mu_);
  ++hits_;
  return true;
}

bool StoreFrameCache::find_checkpoint(const std::string& chain, oci::HashCheckpoint& out) {
  std::lock_guard lock(mu_);
  load_locked();
  auto it = checkpoints_.find(chain);
  if (it == checkpoints_.end()) return false;
  out = it->second;
  return true;
}

void StoreFrameCache::put(const std::string& key, std::string_view compressed) {
  std::uint32_t crc = oci::crc32(std::as_bytes(std::span(compressed.data(), compressed.size())));
  std::lock_guard lock(mu_);
  pending_[key] = {compressed.size(), crc};
}

void StoreFrameCache::record_layer(const oci::Digest& blob, const std::vector<oci::FrameRecord>& frames) {
  std::string text;
  std::lock_guard lock(mu_);
  // Not load_locked(): a reused frame was found through the loaded index, and if nothing was
  // looked up (a layer of small frames) there is nothing to read the records for.
  for (const auto& f : frames) {
    if (f.checkpoint && !f.chain.empty()) {
      text += checkpoint_line(f.chain, *f.checkpoint);
      checkpoints_.insert_or_assign(f.chain, *f.checkpoint);
    }
    const std::string& key = f.key;
    if (key.compare(0, encoder_id_.size() + 1, encoder_id_ + " ") != 0) continue;  // another encoder's frame
    std::uint32_t crc = 0;
    if (auto p = pending_.find(key); p != pending_.end() && p->second.first == f.compressed_size) {
      crc = p->second.second;
      pending_.erase(p);
    } else if (auto i = index_.find(key); i != index_.end() && i->second.size == f.compressed_size) {
      crc = i->second.crc32;  // a reused frame: same bytes, now also in this blob
    } else {
      continue;
    }
    Location loc{blob.hex(), f.compressed_offset, f.compressed_size, crc};
    text += key + "\t" + std::to_string(loc.offset) + " " + std::to_string(loc.size) + " " + crc_field(crc) + "\n";
    index_[key] = std::move(loc);  // the newest layer is the likeliest to survive a prune
  }
  if (text.empty()) return;
  make_dirs(root_ / "cache" / "frames");
  // No fsync (as for step records): the blob is durable already, and a lost or garbled record
  // is a miss — find() checks every frame's CRC before reusing it, and a checkpoint line its own.
  write_file_atomic(root_ / "cache" / "frames" / blob.hex(), text, 0644, Durability::RenameOnly);
}

std::size_t StoreFrameCache::remove_orphans(const fs::path& root) {
  std::size_t removed = 0;
  std::error_code ec;
  const fs::path blobs = root / "blobs" / "sha256";
  for (fs::directory_iterator it(root / "cache" / "frames", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // a record being written (write_file_atomic's temp)
    std::error_code e2;
    if (!fs::exists(blobs / name, e2) && !e2 && fs::remove(it->path(), e2)) ++removed;
  }
  return removed;
}

std::uint64_t StoreFrameCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

}  // namespace cbuild::builder
