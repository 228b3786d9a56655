// ContentHashes — the sha256 of regular files' contents, remembered by their stat data, so a
// COPY's cache key (content_key, copy_files.h) does not reread files that did not change.
// Like git's index and BuildKit's fsutil, which skip unchanged files by stat even under
// --no-cache; persisted in $ROOT/cache/contenthash.
//
// A file is "unchanged" when its FileStamp is: device, inode, size, mtime and ctime (both in
// nanoseconds) and mode. Content can change without changing size and mtime (a rewrite
// followed by `touch -d` to the old time), but never without changing ctime: the kernel sets
// ctime on every write, truncate, rename-over, chmod or utimes, and no call sets it to a chosen
// value. A replaced file (a new inode, or a reused inode number) gets a new ctime as well.
//
// The one hole is granularity: ctime has the kernel's coarse clock resolution (a few ms), so a
// file written twice within one tick, with a hash taken in between, keeps its stamp. Hence
// entries are *settled* only when ctime is older than `settled_before` (by default two seconds
// before this object was made): only settled entries are saved, and only settled ones are
// offered to callers that keep results across builds (settled()). A file modified after it
// settled gets a ctime of "now", necessarily different. Fresh entries still serve this process
// (the same file copied by two steps of one build is hashed once).
//
// Thread-safe (parallel stages). save() is best-effort: two builds saving at once keep the
// entries of the last one; the file is a cache, a missing or damaged one is empty.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "oci/digest.h"

namespace cbuild::builder {

struct FileStamp {
  std::uint64_t dev = 0, ino = 0;
  std::int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
  std::uint32_t mode = 0;
  static FileStamp of(const struct stat& st);
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};

class ContentHashes {
 public:
  // Loads `file` if it exists. `settled_before` is in ns since the epoch (nullopt: now − 2 s).
  explicit ContentHashes(std::filesystem::path file, std::optional<std::int64_t> settled_before = std::nullopt);
  // The store's file of them: $ROOT/cache/contenthash (prune --all removes it).
  static std::filesystem::path store_file(const std::filesystem::path& root) { return root / "cache" / "contenthash"; }

  // The digest recorded for exactly this stamp (settled or put by this process), or nullopt.
  std::optional<oci::Digest> find(const FileStamp& s) const;
  // Records a digest computed from a file whose stamp was `s` before and after it was read.
  void put(const FileStamp& s, const oci::Digest& d);
  // True when `s` is old enough to vouch for its content across builds (see above).
  bool settled(const FileStamp& s) const noexcept { return s.ctime_ns < settled_before_; }

  // Writes the settled entries (atomically) when put() added any. Entries are dropped, oldest
  // files first, beyond kMaxEntries. Never throws.
  void save() noexcept;

  static constexpr std::size_t kMaxEntries = 1u << 20;

 private:
  struct Entry {
    FileStamp stamp;
    unsigned char sha[32];
  };
  struct Key {
    std::uint64_t dev, ino;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept { return std::hash<std::uint64_t>{}(k.ino * 0x9e3779b97f4a7c15ull ^ k.dev); }
  };
  // The saved file is read on first use, not at construction: most builds never ask (no COPY
  // from the context), and a large context's file (100,000 files: 8 MB) took 60 ms to load and
  // free. It stays as read — fixed-size records sorted by (dev, ino), searched in place — so
  // loading costs one read and no allocation per entry.
  void load_locked() const;
  std::optional<Entry> saved_locked(const Key& k) const;
  Entry saved_entry(std::size_t i) const;  // record i of saved_

  std::filesystem::path file_;
  std::int64_t settled_before_;
  mutable std::mutex mu_;
  mutable bool loaded_ = false;
  mutable std::string saved_;         // the file's bytes (magic, then records), once loaded
  mutable std::size_t saved_count_ = 0;
  std::unordered_map<Key, Entry, KeyHash> entries_;  // put by this process; they win over saved_
  bool dirty_ = false;
};

}  // namespace cbuild::builder
