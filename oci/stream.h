// ByteSink and ByteSource — the two streaming interfaces every byte pipeline is built from.
//
// A layer write is a chain of sinks: tar → tee(DiffID hasher) → compressor → tee(digest hasher,
// byte counter) → ingest. finish() flushes and closes a sink and, for sinks that wrap another,
// finishes the inner one too; nothing may be written after it. Sources return 0 only at EOF
// and throw cbuild::Error on failure (DataLoss for corrupt data).
// Neither is thread-safe; a sink or source is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace cbuild::oci {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(std::span<const std::byte> data) = 0;
  // Flushes buffered data and finishes wrapped sinks. Idempotent.
  virtual void finish() {}

  void write(const void* data, std::size_t size) {
    write(std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  }
  void write(std::string_view s) { write(s.data(), s.size()); }
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to out.size() bytes; returns 0 only at end of stream.
  virtual std::size_t read(std::span<std::byte> out) = 0;
  // The same bytes as read(), but a source that holds them in memory may return a view of its
  // own instead of copying them into `scratch`: at most scratch.size() bytes (scratch must not
  // be empty), valid until the next call on this source; empty only at end of stream. The
  // default reads into `scratch`.
  virtual std::span<const std::byte> read_view(std::span<std::byte> scratch) { return scratch.first(read(scratch)); }

  std::size_t read(void* data, std::size_t size) {
    return read(std::span<std::byte>(static_cast<std::byte*>(data), size));
  }
};

// Reads a source to the end (throws ResourceExhausted past max_size).
std::string read_all(ByteSource& src, std::size_t max_size = 64u << 20);
// Copies a source into a sink; returns the number of bytes copied. Does not call finish().
std::uint64_t copy_stream(ByteSource& src, ByteSink& dst);
// Reads and drops the next `n` bytes; Error{DataLoss} when the source ends first.
void skip_bytes(ByteSource& src, std::int64_t n);

}  // namespace cbuild::oci
