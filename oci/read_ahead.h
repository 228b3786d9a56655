// ReadAheadSource — runs an inner ByteSource on a background thread, a few chunks ahead of the
// reader, so that the inner source's work (read(2) and the SHA-256 of a VerifyingSource)
// overlaps the reader's (decompression, tar parsing, writing files). On two cores this is the
// difference between hashing and inflating one after the other and at the same time.
//
// The stream is unchanged: the same bytes in the same order, EOF only after the inner source
// returned 0 (so a wrapped VerifyingSource has checked the digest before the reader sees the
// end), and an exception the inner source throws is rethrown by read() at the position where
// it happened, and by every read() after it.
// At most `depth` chunks of `chunk_size` bytes are buffered. Destroying the source stops the
// thread after the inner read() it is in (a file read, so that is short) and joins it.
// Like every ByteSource, one thread reads it at a time; the inner source is used only by the
// background thread from construction on.
#pragma once

#include <cstddef>
#include <memory>

#include "oci/stream.h"

namespace cbuild::oci {

class ReadAheadSource : public ByteSource {
 public:
  explicit ReadAheadSource(std::unique_ptr<ByteSource> inner, std::size_t chunk_size = 1u << 20,
                           std::size_t depth = 4);
  ~ReadAheadSource() override;
  ReadAheadSource(const ReadAheadSource&) = delete;
  ReadAheadSource& operator=(const ReadAheadSource&) = delete;

  std::size_t read(std::span<std::byte> out) override;
  // A view into the current chunk: no copy.
  std::span<const std::byte> read_view(std::span<std::byte> scratch) override;
  using ByteSource::read;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cbuild::oci
