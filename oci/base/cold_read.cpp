#include "oci/base/cold_read.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "oci/base/error.h"

namespace cbuild {
namespace {

constexpr std::size_t kAlign = 4096;
constexpr std::size_t kDirectChunk = 4u << 20;  // the aligned buffer; larger reads loop

struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};

// The calling thread's aligned buffer for O_DIRECT reads, kept for the thread's life: readers
// are often short-lived (one per cached frame), and first-touching 4 MiB of fresh pages for
// each would cost more than the read does here.
std::byte* thread_buffer() {
  thread_local std::unique_ptr<std::byte, FreeDeleter> buf;
  if (!buf) {
    void* p = std::aligned_alloc(kAlign, kDirectChunk);
    if (!p) throw Error(ErrorKind::ResourceExhausted, "out of memory for a read buffer");
    buf.reset(static_cast<std::byte*>(p));
  }
  return buf.get();
}

}  // namespace

ColdAwareReader::ColdAwareReader(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
ColdAwareReader::~ColdAwareReader() = default;

std::size_t ColdAwareReader::read_plain(std::byte* out, std::size_t size, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd_, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read", what_);
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  plain_ += done;
  return done;
}

// Reads [offset, offset+size) through the O_DIRECT fd: the enclosing aligned range goes into
// buf_, the wanted part is copied out. Returns the count (short at EOF), or SIZE_MAX when
// O_DIRECT turns out to be unusable here (the caller then reads plainly).
std::size_t ColdAwareReader::read_direct(std::byte* out, std::size_t size, std::uint64_t offset) {
  if (!direct_fd_) {
    std::string self = "/proc/self/fd/" + std::to_string(fd_);
    int fd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0) {
      direct_ok_ = false;
      return SIZE_MAX;
    }
    direct_fd_.reset(fd);
  }
  std::byte* buf = thread_buffer();
  std::size_t done = 0;
  while (done < size) {
    std::uint64_t pos = offset + done;
    std::uint64_t start = pos & ~static_cast<std::uint64_t>(kAlign - 1);
    std::size_t skip = static_cast<std::size_t>(pos - start);
    std::size_t want = std::min(size - done + skip, kDirectChunk);
    want = (want + kAlign - 1) & ~(kAlign - 1);
    ssize_t n;
    do n = ::pread(direct_fd_.get(), buf, want, static_cast<off_t>(start));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EINVAL && done == 0) {  // the filesystem takes the flag but not the I/O
        direct_ok_ = false;
        return SIZE_MAX;
      }
      throw_errno("read", what_);
    }
    if (static_cast<std::size_t>(n) <= skip) break;  // end of file
    std::size_t got = std::min(static_cast<std::size_t>(n) - skip, size - done);
    std::memcpy(out + done, buf + skip, got);
    done += got;
    if (static_cast<std::size_t>(n) < want) break;  // end of file
  }
  direct_ += done;
  return done;
}

// How much of [offset, offset+size) the page cache holds, by cachestat(2) (Linux 6.5), which —
// unlike a RWF_NOWAIT read — does not start readahead into the cache as a side effect.
ColdAwareReader::Residency ColdAwareReader::residency(std::size_t size, std::uint64_t offset) {
  if (!cachestat_ok_) return Residency::Unknown;
  struct {
    std::uint64_t off, len;
  } range{offset & ~static_cast<std::uint64_t>(kAlign - 1), 0};
  range.len = ((offset + size + kAlign - 1) & ~static_cast<std::uint64_t>(kAlign - 1)) - range.off;
  struct {
    std::uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
  } cs{};
  constexpr long kCachestat = 451;  // the same number on every architecture (added in 6.5)
  if (::syscall(kCachestat, static_cast<unsigned>(fd_), &range, &cs, 0u) != 0) {
    cachestat_ok_ = false;  // ENOSYS on older kernels
    return Residency::Unknown;
  }
  // Pages past end of file are never cached, so a range reaching beyond it reads as partial
  // (and the direct read then stops at EOF), which is correct either way.
  std::uint64_t pages = range.len / kAlign;
  if (cs.nr_cache >= pages) return Residency::All;
  return cs.nr_cache == 0 ? Residency::None : Residency::Partial;
}

std::size_t ColdAwareReader::pread(std::byte* out, std::size_t size, std::uint64_t offset) {
  if (size == 0) return 0;
  Residency r = residency(size, offset);
  if (r == Residency::All) {
    std::size_t n = read_plain(out, size, offset);
    plain_ -= n;
    cached_ += n;
    return n;
  }
  // Partly cached: O_DIRECT for all of it (the kernel writes back any dirty cached page of the
  // range first), cheaper here than faulting the missing pages into the cache.
  if (r != Residency::Unknown && direct_ok_) {
    std::size_t n = read_direct(out, size, offset);
    if (n != SIZE_MAX) return n;
  }
  return read_plain(out, size, offset);
}

}  // namespace cbuild
