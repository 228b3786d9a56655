#include "oci/read_ahead.h"

#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "oci/base/error.h"

namespace cbuild::oci {

// A ring of `depth` chunks. The producer owns ring[tail] while full < depth, the reader owns
// ring[head] while full > 0; the mutex guards only the counters, never a read or a copy.
struct ReadAheadSource::Impl {
  Impl(std::unique_ptr<ByteSource> in, std::size_t chunk_size, std::size_t depth)
      : inner(std::move(in)), ring(depth), sizes(depth, 0) {
    if (chunk_size == 0 || depth == 0) throw Error(ErrorKind::InvalidArgument, "read-ahead needs a chunk size and depth");
    for (auto& c : ring) c.resize(chunk_size);
    producer = std::thread([this] { produce(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(m);
      stopping = true;
    }
    cv_space.notify_all();
    if (producer.joinable()) producer.join();
  }

  void produce() {
    std::size_t tail = 0;
    for (;;) {
      {
        std::unique_lock lock(m);
        cv_space.wait(lock, [&] { return stopping || full < ring.size(); });
        if (stopping) return;
      }
      std::vector<std::byte>& c = ring[tail];
      std::size_t got = 0;
      bool end = false;
      std::exception_ptr err;
      try {
        while (got < c.size()) {
          std::size_t n = inner->read(std::span(c.data() + got, c.size() - got));
          if (n == 0) {
            end = true;
            break;
          }
          got += n;
          if (stop_requested()) return;
        }
      } catch (...) {
        err = std::current_exception();
      }
      {
        std::lock_guard lock(m);
        if (got > 0) {
          sizes[tail] = got;
          ++full;
        }
        if (err) error = err;
        if (end) eof = true;
      }
      cv_data.notify_one();
      if (end || err) return;
      tail = (tail + 1) % ring.size();
    }
  }

  bool stop_requested() {
    std::lock_guard lock(m);
    return stopping;
  }

  std::span<const std::byte> read_view(std::span<std::byte> out) {
    if (out.empty()) return {};
    if (pos == 0 || pos == sizes[head]) {
      // The current chunk (if any) is used up: hand it back and wait for the next.
      std::unique_lock lock(m);
      if (holding) {
        holding = false;
        pos = 0;
        --full;
        head = (head + 1) % ring.size();
        cv_space.notify_one();
      }
      cv_data.wait(lock, [&] { return full > 0 || eof || error; });
      if (full == 0) {
        if (error) std::rethrow_exception(error);
        return {};
      }
      holding = true;
    }
    // The chunk stays the reader's until the next call, so the view stays valid until then.
    std::size_t n = std::min(out.size(), sizes[head] - pos);
    std::span<const std::byte> v(ring[head].data() + pos, n);
    pos += n;
    return v;
  }

  std::unique_ptr<ByteSource> inner;
  std::vector<std::vector<std::byte>> ring;
  std::vector<std::size_t> sizes;

  std::mutex m;
  std::condition_variable cv_space, cv_data;
  std::size_t full = 0;  // chunks filled and not yet handed back by the reader
  bool eof = false, stopping = false;
  std::exception_ptr error;

  // Reader side only.
  std::size_t head = 0, pos = 0;
  bool holding = false;

  std::thread producer;  // last: starts after everything above exists
};

ReadAheadSource::ReadAheadSource(std::unique_ptr<ByteSource> inner, std::size_t chunk_size, std::size_t depth)
    : impl_(std::make_unique<Impl>(std::move(inner), chunk_size, depth)) {}

ReadAheadSource::~ReadAheadSource() = default;

std::size_t ReadAheadSource::read(std::span<std::byte> out) {
  std::span<const std::byte> v = impl_->read_view(out);
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size());
  return v.size();
}

std::span<const std::byte> ReadAheadSource::read_view(std::span<std::byte> scratch) { return impl_->read_view(scratch); }

}  // namespace cbuild::oci
