// ColdAwareReader — positional reads of a file that may or may not be in the page cache.
//
// Why: on this class of VM, filling the page cache is most of the cost of a cold read (1 GiB:
// 1.8 s buffered, 0.5 s with O_DIRECT), and the store writes large blobs with O_DIRECT
// (oci/ingest.h), so a blob written a moment ago is on disk only. Each read asks the kernel
// which pages of the range are cached (cachestat(2)): a range wholly in the page cache is read
// from there at memcpy speed, any other with O_DIRECT into an aligned buffer of its own, at
// disk speed and without filling the cache. Where the kernel lacks cachestat (before 6.5) or
// the filesystem refuses O_DIRECT, it is a plain pread(2).
//
// The fd is not owned (it must outlive the reader); the O_DIRECT fd is opened lazily from
// /proc/self/fd. Not thread-safe: one thread reads at a time (the aligned buffer is the
// reading thread's own, kept for that thread's life). Throws cbuild::Error
// naming `what` on a failed read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "oci/base/unique_fd.h"

namespace cbuild {

class ColdAwareReader {
 public:
  ColdAwareReader(int fd, std::string what);
  ~ColdAwareReader();
  ColdAwareReader(const ColdAwareReader&) = delete;
  ColdAwareReader& operator=(const ColdAwareReader&) = delete;

  // Reads up to `size` bytes at `offset` into `out`; fewer only at end of file. Returns the count.
  std::size_t pread(std::byte* out, std::size_t size, std::uint64_t offset);

  // Bytes that came from the page cache / from disk with O_DIRECT / by plain pread where
  // residency was unknown (tests and benchmarks).
  std::uint64_t cached_bytes() const noexcept { return cached_; }
  std::uint64_t direct_bytes() const noexcept { return direct_; }
  std::uint64_t plain_bytes() const noexcept { return plain_; }

 private:
  enum class Residency { All, Partial, None, Unknown };
  Residency residency(std::size_t size, std::uint64_t offset);
  std::size_t read_direct(std::byte* out, std::size_t size, std::uint64_t offset);
  std::size_t read_plain(std::byte* out, std::size_t size, std::uint64_t offset);

  int fd_;
  std::string what_;
  UniqueFd direct_fd_;
  bool cachestat_ok_ = true;  // cachestat(2) supported
  bool direct_ok_ = true;   // O_DIRECT supported (until an open or read says otherwise)
  std::uint64_t cached_ = 0, direct_ = 0, plain_ = 0;
};

}  // namespace cbuild
