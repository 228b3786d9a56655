#include "oci/internal/blob_file_writer.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace cbuild::oci::internal {
namespace {

constexpr std::size_t kBufferSize = 1u << 20;  // a multiple of every logical block size
constexpr std::size_t kAlign = 4096;           // buffer address, file offset and length for O_DIRECT
constexpr std::size_t kBuffers = 8;            // one being filled, up to seven in flight

struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using Buffer = std::unique_ptr<std::byte, FreeDeleter>;

Buffer aligned_buffer() {
  // Not zero-filled: first-touch page faults are expensive here, and every byte is written
  // before it is read.
  void* p = std::aligned_alloc(kAlign, kBufferSize);
  if (!p) throw Error(ErrorKind::ResourceExhausted, "ingest: out of memory for a write buffer");
  return Buffer(static_cast<std::byte*>(p));
}

// pwrite(2) of all `size` bytes at `offset`; returns 0 or the errno.
int pwrite_all(int fd, const std::byte* p, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

}  // namespace

struct BlobFileWriter::Impl {
  int fd;
  std::string what;
  bool allow_direct;
  bool direct = false;
  bool finished = false;

  Buffer current;          // being filled by the caller
  std::size_t used = 0;    // bytes in `current`
  std::uint64_t offset = 0;  // file offset of current[0]
  std::uint64_t total = 0;

  // Direct mode: buffers handed to the writer thread and back.
  struct Job {
    Buffer buf;
    std::size_t size;
    std::uint64_t offset;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> queue;
  std::vector<Buffer> spare;
  std::size_t in_flight = 0;  // queued or being written
  int error = 0;
  bool stop = false;
  std::thread thread;

  void run() {
    std::unique_lock lock(mu);
    std::vector<Job> batch;
    for (;;) {
      cv.wait(lock, [&] { return stop || !queue.empty(); });
      if (queue.empty()) return;  // stop requested and nothing left
      // Whatever is queued goes out in one pwritev (jobs are contiguous, in order): larger
      // requests get more out of the disk than 1 MiB ones.
      batch.clear();
      while (!queue.empty() && batch.size() < kBuffers) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      int err = 0;
      if (error == 0 && !stop) {
        lock.unlock();
        err = write_batch(batch);
        lock.lock();
      }
      if (err != 0 && error == 0) error = err;
      for (Job& job : batch) spare.push_back(std::move(job.buf));
      in_flight -= batch.size();
      cv.notify_all();
    }
  }

  // pwritev(2) of the jobs' buffers at the first one's offset; 0 or the errno.
  int write_batch(const std::vector<Job>& jobs) {
    iovec iov[kBuffers];
    std::size_t n = 0, total = 0;
    for (const Job& j : jobs) {
      iov[n++] = iovec{j.buf.get(), j.size};
      total += j.size;
    }
    std::uint64_t offset = jobs.front().offset;
    std::size_t first = 0;
    while (total > 0) {
      ssize_t w = ::pwritev(fd, iov + first, static_cast<int>(n - first), static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (w == 0) return EIO;
      total -= static_cast<std::size_t>(w);
      offset += static_cast<std::uint64_t>(w);
      // Skip what was written (a short write leaves the rest of one buffer).
      auto left = static_cast<std::size_t>(w);
      while (left > 0 && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
    return 0;
  }

  [[noreturn]] void fail(int err) { throw_errno("write", what, err); }

  // Switches to O_DIRECT and starts the writer thread; false where the filesystem refuses.
  bool start_direct() {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) return false;
    for (std::size_t i = 1; i < kBuffers; ++i) spare.push_back(aligned_buffer());
    thread = std::thread([this] { run(); });
    direct = true;
    return true;
  }

  // Hands `current` (size bytes, aligned) to the writer and takes a spare buffer.
  void submit(std::size_t size) {
    std::unique_lock lock(mu);
    if (error != 0) fail(error);
    queue.push_back(Job{std::move(current), size, offset});
    ++in_flight;
    cv.notify_all();
    cv.wait(lock, [&] { return error != 0 || !spare.empty(); });
    if (error != 0) fail(error);
    current = std::move(spare.back());
    spare.pop_back();
  }

  void drain() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return in_flight == 0; });
    if (error != 0) fail(error);
  }

  void stop_thread() noexcept {
    if (!thread.joinable()) return;
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }

  // A full buffer: the first one decides the mode.
  void flush_full() {
    if (!direct && allow_direct && offset == 0) start_direct();
    if (direct) {
      submit(used);
    } else {
      write_all(fd, current.get(), used, what);
    }
    offset += used;
    used = 0;
  }
};

BlobFileWriter::BlobFileWriter(int fd, std::string what, bool allow_direct)
    : impl_(std::make_unique<Impl>()) {
  impl_->fd = fd;
  impl_->what = std::move(what);
  impl_->allow_direct = allow_direct;
  impl_->current = aligned_buffer();
}

BlobFileWriter::~BlobFileWriter() { impl_->stop_thread(); }

void BlobFileWriter::write(const std::byte* data, std::size_t size) {
  Impl& d = *impl_;
  if (d.finished) throw Error(ErrorKind::Internal, "write after finish: " + d.what);
  d.total += size;
  while (size > 0) {
    std::size_t n = std::min(size, kBufferSize - d.used);
    std::memcpy(d.current.get() + d.used, data, n);
    d.used += n;
    data += n;
    size -= n;
    if (d.used == kBufferSize) d.flush_full();
  }
}

void BlobFileWriter::finish() {
  Impl& d = *impl_;
  if (d.finished) return;
  d.finished = true;
  if (!d.direct) {
    if (d.used > 0) write_all(d.fd, d.current.get(), d.used, d.what);
    return;
  }
  d.drain();
  d.stop_thread();
  std::size_t aligned = d.used & ~(kAlign - 1);
  if (aligned > 0) {
    if (int err = pwrite_all(d.fd, d.current.get(), aligned, d.offset)) d.fail(err);
  }
  // The tail is not a whole block: O_DIRECT would refuse it.
  int flags = ::fcntl(d.fd, F_GETFL);
  if (flags < 0 || ::fcntl(d.fd, F_SETFL, flags & ~O_DIRECT) != 0) d.fail(errno);
  if (d.used > aligned) {
    if (int err = pwrite_all(d.fd, d.current.get() + aligned, d.used - aligned, d.offset + aligned)) d.fail(err);
  }
}

bool BlobFileWriter::direct() const noexcept { return impl_->direct; }
std::uint64_t BlobFileWriter::bytes() const noexcept { return impl_->total; }

}  // namespace cbuild::oci::internal
