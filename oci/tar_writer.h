// TarWriter — writes a deterministic PAX tar (libarchive, unblocked) into a ByteSink.
//
// Determinism: no atime/ctime, no device/inode numbers of regular files, uname/gname only when
// the entry carries them, xattrs in name order, mtime clamped to SOURCE_DATE_EPOCH when given,
// and write_tree() emits entries sorted by path bytes (a directory before its contents).
// The archive ends with two zero blocks and no padding to 10240 bytes (as Go's archive/tar).
//
// Boundaries: when a BoundaryListener is given, it is told after every complete entry (and
// after every `chunk_bytes` of a large file's data) that the bytes written so far end at a place
// where a compressed frame may be cut. The fingerprint it gets depends only on the entry's own
// metadata (path, type, size, mode, chunk index), never on what came before, so inserting a
// file does not move later cut points (see compression's FramedCompressSink).
//
// Not thread-safe. Throws cbuild::Error (InvalidArgument for a malformed entry, the sink's or
// the source's error otherwise); after a throw the writer is unusable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/stream.h"
#include "oci/tar_entry.h"

namespace cbuild::oci {

class BoundaryListener {
 public:
  virtual ~BoundaryListener() = default;
  // All tar bytes written so far may end a frame. `fingerprint` is a well-mixed 64-bit value.
  virtual void boundary(std::uint64_t fingerprint) = 0;
  // The next `size` bytes written to the sink are bytes [offset, offset + size) of a file whose
  // whole content has the SHA-256 `content` (as the caller of add_file vouched). Lets a framed
  // compressor identify frames without hashing file data again (compression.h).
  virtual void known_content(const Digest& /*content*/, std::uint64_t /*offset*/, std::uint64_t /*size*/) {}
  // Room in the sink's own buffer for up to `want` of the next bytes: the tar writer reads file
  // data into it and writes that same span to the sink, which then has nothing to copy. Valid
  // until the next call on the sink. Empty (the default): no such room, data is copied.
  virtual std::span<std::byte> write_room(std::size_t /*want*/) { return {}; }
};

struct TarWriterOptions {
  // Clamp every mtime to at most this value (SOURCE_DATE_EPOCH). nullopt: keep mtimes.
  std::optional<std::int64_t> clamp_mtime;
  // Offer a cut point inside a regular file's data every this many bytes (0: never).
  std::uint64_t chunk_bytes = 4u << 20;
  BoundaryListener* listener = nullptr;
};

// A SOURCE_DATE_EPOCH value: decimal seconds since 1970 and nothing else (no sign, no spaces,
// nothing after the digits, within int64). `origin` says where the value came from
// ("environment variable SOURCE_DATE_EPOCH", "--build-arg SOURCE_DATE_EPOCH"); the
// InvalidArgument thrown otherwise reads `<origin> "<value>": not a number of seconds`.
std::int64_t parse_source_date_epoch(std::string_view value, std::string_view origin);
// The SOURCE_DATE_EPOCH environment variable through parse_source_date_epoch(); nullopt when
// unset or empty.
std::optional<std::int64_t> source_date_epoch_from_env();

// Identifies the bytes TarWriter makes of given entries: the format and the libarchive version
// that writes the headers (a cache of finished layers keys on it, builder/cache/layer_memo.h).
std::string tar_writer_id();

class TarWriter {
 public:
  explicit TarWriter(ByteSink& out, TarWriterOptions options = {});
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  // Adds one entry. For TarType::File, `data` must yield exactly entry.size bytes (DataLoss
  // otherwise); for other types it is ignored and may be null.
  void add(const TarEntry& entry, ByteSource* data = nullptr);
  // Adds a regular file whose bytes come from fd (read with large reads from offset 0;
  // holes of sparse files read as zeros). Exactly entry.size bytes are read. `content`, when
  // given, is the SHA-256 of those bytes, passed on to the listener (known_content): the caller
  // must be sure of it (a wrong one makes a frame cache serve other bytes under this file's
  // name), e.g. by checking after the call that the file's stat data did not change since it
  // was hashed.
  void add_file(const TarEntry& entry, int fd, const Digest* content = nullptr);

  // Walks `root` (fd-relative, never following symlinks) and adds everything under it, sorted
  // by path bytes. Hardlinks (same dev+ino, nlink > 1) become hardlink entries to the first
  // path; xattrs are copied; sockets are skipped. Entries get the owner and mode on disk;
  // `adjust`, when given, may then change a regular file's or directory's entry (typed File
  // or Dir, with its xattrs) before it is written, a regular file into a device node or fifo
  // written without data (how a caller reads placeholders that stand for other entries).
  using TreeEntryHook = std::function<void(TarEntry& entry)>;
  void add_tree(const std::filesystem::path& root, const TreeEntryHook& adjust = {});

  // Writes the end-of-archive blocks and finishes the sink. Idempotent.
  void finish();

  std::uint64_t bytes_written() const noexcept;
  std::uint64_t entries_written() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cbuild::oci
