// StoreFrameCache — incremental recompression across builds: the compressed frames of layers
// already in the store, found by the hash of the uncompressed bytes they hold (the key made by
// oci::frame_cache_key: encoder id + sha256 of the frame's input).
//
// It keeps no second copy of compressed bytes. A record points into a layer blob (blob digest,
// offset, size) and carries the CRC-32 of the frame's compressed bytes, which find() checks
// after reading them, so a damaged, truncated or pruned blob is a miss and never a corrupt new
// layer. A CRC, not a SHA-256: the check is against damage (a torn copy of $ROOT, a bad
// sector); whoever can change a blob can change the record as well (oci/checksum.h), and a
// SHA-256 pass over every reused frame was a quarter of a warm 1 GiB rebuild's CPU time.
// Records live in $ROOT/cache/frames/<blob hex>, one small text file per layer.
//
// The same file holds the layer's hash checkpoints (oci::HashCheckpoint, one per frame, keyed by
// FrameRecord::chain): a later layer that begins with the same frames resumes its DiffID and
// blob hashes after them instead of hashing them again. Each carries a CRC-32 of its line, so a
// damaged one is a miss (a wrong state would give the new layer wrong digests).
//
// Use: pass the cache to LayerWriterOptions::cache and collect on_frame records; after the
// layer committed, call record_layer(). find()/put() are called from compression workers and
// are thread-safe; record_layer() may run concurrently with them.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "oci/compression.h"
#include "oci/digest.h"

namespace cbuild::builder {

class StoreFrameCache final : public oci::FrameCache {
 public:
  // `root` is the store root (blobs/sha256/ and cache/frames/ below it). `encoder_id` is
  // oci::encoder_id() of the codec and level the layers of this build use.
  StoreFrameCache(std::filesystem::path root, std::string encoder_id);

  bool find(const std::string& key, std::string& out) override;
  void put(const std::string& key, std::string_view compressed) override;
  bool find_checkpoint(const std::string& chain, oci::HashCheckpoint& out) override;

  // Ties the frames of a committed layer to its blob and persists the records.
  void record_layer(const oci::Digest& blob, const std::vector<oci::FrameRecord>& frames);

  std::uint64_t hits() const;

  // Removes the records of layers whose blob is no longer in the store (prune): their frames
  // can no longer be read, and records would otherwise pile up with every layer ever built.
  // Returns how many.
  static std::size_t remove_orphans(const std::filesystem::path& root);

 private:
  struct Location {
    std::string blob_hex;
    std::uint64_t offset = 0, size = 0;
    std::uint32_t crc32 = 0;  // of the compressed frame
  };
  void load_locked();

  std::filesystem::path root_;
  std::string encoder_id_;
  mutable std::mutex mu_;
  bool loaded_ = false;
  std::unordered_map<std::string, Location> index_;
  std::unordered_map<std::string, oci::HashCheckpoint> checkpoints_;  // chain → states
  std::unordered_map<std::string, std::pair<std::uint64_t, std::uint32_t>> pending_;  // key → (size, crc32)
  std::uint64_t hits_ = 0;
};

}  // namespace cbuild::builder
