// VerifyingSource — wraps a blob source and checks it against a descriptor's digest and size.
//
// Reading past `expected_size` bytes throws DataLoss at once (a server or file that sends more
// than announced is never buffered without bound); at EOF the byte count and the SHA-256 are
// compared and a mismatch throws DataLoss naming `what`. Only after the final read() returned 0
// has the content been verified. Once it has thrown, every later read() throws the same error.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "oci/digest.h"
#include "oci/stream.h"

namespace cbuild::oci {

class VerifyingSource : public ByteSource {
 public:
  // expected_size: nullopt = unknown (only the digest is checked; `max_size` still bounds it).
  VerifyingSource(std::unique_ptr<ByteSource> inner, Digest expected,
                  std::optional<std::int64_t> expected_size, std::string what,
                  std::uint64_t max_size = UINT64_MAX);
  std::size_t read(std::span<std::byte> out) override;
  using ByteSource::read;
  bool verified() const noexcept { return verified_; }
  std::uint64_t bytes_read() const noexcept { return count_; }

 private:
  [[noreturn]] void fail(std::string message);

  std::unique_ptr<ByteSource> inner_;
  Digest expected_;
  std::optional<std::int64_t> expected_size_;
  std::string what_;
  std::uint64_t max_size_;
  Sha256 hash_;
  std::uint64_t count_ = 0;
  bool verified_ = false;
  std::optional<std::string> failed_;
};

// A stored blob opened for reading: `inner` (a file) checked against `expected` and `size`.
// Blobs of kReadAheadThreshold bytes or more are read and hashed on a background thread
// (ReadAheadSource), so verifying costs the reader no time on a machine with a spare core.
inline constexpr std::int64_t kReadAheadThreshold = 1 << 20;
std::unique_ptr<ByteSource> open_verified(std::unique_ptr<ByteSource> inner, Digest expected, std::int64_t size,
                                          std::string what);

}  // namespace cbuild::oci
