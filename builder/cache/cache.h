// BuildCache — the build-cache records under $ROOT/cache/steps/, one small JSON file per step.
//
// A step's key is a chain: key(step) = sha256(version, key(parent step), the step's inputs),
// where the first parent is the base image's config digest (or "scratch"), and the inputs
// are what the planner and the executor say the step depends on (the expanded instruction,
// every ARG and ENV in scope, content hashes of the files COPY/ADD read, and the stage's
// StageEnv::key_inputs: layer encoding and time rule). So a record found under a key is the
// result of exactly those inputs on exactly that parent.
//
// A record holds the step's result: the layer it added (descriptor + DiffID; none for
// config-only steps) and the whole image config after the step (with history and rootfs). It
// is valid only while its layer blob is in the store; find() checks that.
//
// Records are written atomically (tmp + rename), so concurrent builds and a killed process
// never leave a torn record; they are not fsynced (a power loss can only lose or garble one,
// and a corrupt record, one naming another key, or one whose layer blob is missing or of
// another size is treated as a miss). Thread-safe. Within one
// process, claim() lets parallel stages that reach the same step compute it once.
//
// Last use, for `prune --keep-storage` / `--filter until=`: a record's file mtime. put() sets
// it and every hit of find() sets it to now (utimensat on the file, which changes no byte, so
// readers of the record and the atomic-replace rule are unaffected; a store the caller cannot
// write just keeps the old time).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/base/keyed_mutex.h"
#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/store.h"

namespace cbuild::builder {

struct CacheRecord {
  std::optional<oci::Descriptor> layer;  // the layer the step added, if any
  std::optional<oci::Digest> diff_id;
  std::string config_json;               // the image config after the step
  std::int64_t created = 0;              // unix seconds (prune goes by last use, not this)
};

class BuildCache {
 public:
  // `root` is the store root; records live under root/cache/steps/.
  explicit BuildCache(std::filesystem::path root);

  // The key of a step: chains `parent` (a previous key, or a base-image marker) with `inputs`.
  static oci::Digest key(std::string_view parent, std::string_view inputs);

  // The record under `key`, if present, parseable and its layer blob is in `blobs`.
  std::optional<CacheRecord> find(const oci::Digest& key, const oci::BlobProvider& blobs) const;
  void put(const oci::Digest& key, const CacheRecord& record);
  // Held while a step with this key is looked up, computed and put(): another thread of this
  // process reaching the same key waits, then finds the record instead of repeating the step
  // (BuildKit merges identical vertices the same way).
  KeyedMutex::Guard claim(const oci::Digest& key) { return claims_.lock(key.hex()); }

  // Every blob the records hold (layers), so prune keeps them. Unreadable records are skipped.
  std::vector<oci::Digest> referenced_blobs() const;
  // The layer stacks (rootfs.diff_ids of the config after each step) the records describe, so
  // prune keeps the snapshots a cache hit would stack on. Unreadable records are skipped.
  std::vector<std::vector<oci::Digest>> layer_stacks() const;
  // Removes every record (prune --all); returns how many.
  std::size_t clear();

  // Housekeeping (prune, df): every record with its last use and what it holds (nothing for a
  // damaged one).
  struct Usage {
    oci::Digest key;
    std::int64_t file_bytes = 0;        // the record file on disk (st_blocks × 512)
    std::int64_t last_used = 0;         // unix seconds: the file's mtime
    std::optional<oci::Digest> layer;   // the layer blob it holds
    std::vector<oci::Digest> diff_ids;  // the layer stack after the step
  };
  std::vector<Usage> usage() const;
  // Removes the record under `key`; false when there was none. A build that reads it at the
  // same time sees the whole record or a miss.
  bool remove(const oci::Digest& key);

 private:
  std::filesystem::path dir_;
  KeyedMutex claims_;
};

}  // namespace cbuild::builder
