// make_gzip_decoder (codec.h): inflates the sized members of cbuild's framed gzip layers on
// worker threads, in order, and hands anything else to the serial decoder.
//
// Why: inflate is the one step of reading a layer that does not overlap with anything else —
// one core inflates while the read-ahead thread hashes — so members must be found without
// inflating them, which the sized header (gzip_sized_header.h) allows.
//
// The reading thread does all reads of the source: it reads whole members ahead (a window of
// at most kWindowMembers members and, past the first, kWindowBytes bytes of input plus output)
// and queues them; workers inflate each into a buffer of the size its header announces; read()
// copies out of the oldest one. So the source is still read by one thread, in order, and the
// reader sees EOF only after the source returned 0 (a VerifyingSource has checked the digest).
// Errors keep their place: a member that fails yields the bytes it inflated before the fault
// and then throws; an error of the source is thrown after every member read before it.
// The first member without a sized header, or with sizes over kMaxMemberBytes, ends the
// window: once the window is drained, that member and all after it go through the serial
// decoder.
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "oci/base/error.h"
#include "oci/internal/codec.h"
#include "oci/internal/gzip_sized_header.h"
#include "oci/internal/prefix_source.h"

namespace cbuild::oci::internal {
namespace {

constexpr std::size_t kWindowMembers = 6;
constexpr std::size_t kWindowBytes = 32u << 20;
// Above cbuild's largest frame (FramingOptions::hard_max, 32 MiB, a little more compressed):
// a size field over it is left to the serial decoder rather than allocated.
constexpr std::uint32_t kMaxMemberBytes = 36u << 20;

// Grows without zero-filling and keeps its pages between members (no fault per page per member).
class Buffer {
 public:
  std::uint8_t* reserve(std::size_t n) {
    if (n > cap_) {
      p_.reset(new std::uint8_t[n]);
      cap_ = n;
    }
    return p_.get();
  }
  std::uint8_t* data() const noexcept { return p_.get(); }
  std::size_t capacity() const noexcept { return cap_; }

 private:
  std::unique_ptr<std::uint8_t[]> p_;
  std::size_t cap_ = 0;
};

struct Member {
  Buffer in, out;
  std::size_t in_size = 0, out_size = 0;
  std::uint64_t offset = 0;  // of the member in the compressed stream
  // Written by a worker before `done`, read by the reader after it (both under the mutex).
  std::size_t produced = 0;
  std::string error;
  bool done = false;
};

class ParallelGzipDecoder final : public ByteSource {
 public:
  ParallelGzipDecoder(std::unique_ptr<ByteSource> src, std::string what, GzipDecoderOptions o)
      : src_(std::move(src)), what_(std::move(what)), options_(o) {}

  ~ParallelGzipDecoder() override {
    {
      std::lock_guard lock(m_);
      stopping_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : workers_) t.join();
  }

  ParallelGzipDecoder(const ParallelGzipDecoder&) = delete;
  ParallelGzipDecoder& operator=(const ParallelGzipDecoder&) = delete;

  std::size_t read(std::span<std::byte> out) override {
    if (out.empty()) return 0;
    std::span<const std::byte> v = read_view(out);
    if (!v.empty() && v.data() != out.data()) std::memcpy(out.data(), v.data(), v.size());
    return v.size();
  }

  // Views into the front member's output: the tar reader parses it in place.
  std::span<const std::byte> read_view(std::span<std::byte> scratch) override {
    if (scratch.empty()) return {};
    for (;;) {
      while (reading_ahead_ && (window_.empty() || (window_.size() < kWindowMembers && window_bytes_ < kWindowBytes)))
        read_member();
      if (!window_.empty()) {
        Member& f = *window_.front();
        if (!front_done_) {
          std::unique_lock lock(m_);
          cv_done_.wait(lock, [&] { return f.done; });
          front_done_ = true;
        }
        if (pos_ < f.produced) {
          std::size_t n = std::min(scratch.size(), f.produced - pos_);
          std::span<const std::byte> v(reinterpret_cast<const std::byte*>(f.out.data()) + pos_, n);
          pos_ += n;
          return v;
        }
        if (!f.error.empty())
          throw Error(ErrorKind::DataLoss, what_ + ": " + f.error + " (gzip member at compressed byte " +
                                               std::to_string(f.offset) + ")");
        recycle();
        continue;
      }
      if (serial_) return serial_->read_view(scratch);
      if (source_error_) std::rethrow_exception(source_error_);
      return {};
    }
  }
  using ByteSource::read;

 private:
  // Reads up to n bytes; fewer only at the end of the source.
  std::size_t fill(std::uint8_t* p, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      std::size_t r = src_->read(std::span(reinterpret_cast<std::byte*>(p) + got, n - got));
      if (r == 0) break;
      got += r;
    }
    offset_ += got;
    return got;
  }

  // Reads the next member into the window, or ends reading ahead (end of the source, an error
  // of the source, or a member to leave to the serial decoder).
  void read_member() {
    std::uint8_t head[kSizedGzipHeaderSize];
    std::uint64_t at = offset_;
    std::size_t got = 0;
    try {
      got = fill(head, sizeof head);
    } catch (...) {
      return stop(std::current_exception());
    }
    if (got == 0) return stop(nullptr);
    auto sizes = parse_sized_gzip_header(std::span(head, got));
    if (!sizes || sizes->compressed < kSizedGzipHeaderSize || sizes->compressed > kMaxMemberBytes ||
        sizes->uncompressed > kMaxMemberBytes) {
      std::string prefix(reinterpret_cast<const char*>(head), got);
      serial_ = make_serial_gzip_decoder(std::make_unique<PrefixSource>(std::move(prefix), std::move(src_)), what_,
                                         options_.zlib);
      reading_ahead_ = false;
      return;
    }
    std::unique_ptr<Member> mb = take_spare();
    mb->offset = at;
    mb->out_size = sizes->uncompressed;
    std::uint8_t* in = mb->in.reserve(sizes->compressed);
    std::memcpy(in, head, sizeof head);
    std::size_t rest = 0;
    try {
      rest = fill(in + sizeof head, sizes->compressed - sizeof head);
    } catch (...) {
      return stop(std::current_exception());
    }
    // Short only at the end of the source: the worker reports the member as truncated.
    mb->in_size = sizeof head + rest;
    if (mb->in_size < sizes->compressed) reading_ahead_ = false;
    mb->out.reserve(mb->out_size);
    window_bytes_ += mb->in_size + mb->out_size;
    start_workers();
    {
      std::lock_guard lock(m_);
      queue_.push_back(mb.get());
    }
    cv_work_.notify_one();
    window_.push_back(std::move(mb));
  }

  void stop(std::exception_ptr e) {
    source_error_ = std::move(e);
    reading_ahead_ = false;
  }

  std::unique_ptr<Member> take_spare() {
    if (spare_.empty()) return std::make_unique<Member>();
    std::unique_ptr<Member> mb = std::move(spare_.back());
    spare_.pop_back();
    mb->produced = 0;
    mb->error.clear();
    mb->done = false;
    return mb;
  }

  void recycle() {
    std::unique_ptr<Member> mb = std::move(window_.front());
    window_.pop_front();
    window_bytes_ -= mb->in_size + mb->out_size;
    pos_ = 0;
    front_done_ = false;
    if (spare_.size() < kWindowMembers && mb->in.capacity() + mb->out.capacity() <= kWindowBytes / 2)
      spare_.push_back(std::move(mb));
  }

  void start_workers() {
    if (!workers_.empty()) return;
    for (unsigned i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { work(); });
  }

  void work() {
    std::unique_ptr<GzipMemberInflater> inflater;
    for (;;) {
      Member* mb = nullptr;
      {
        std::unique_lock lock(m_);
        cv_work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        mb = queue_.front();
        queue_.pop_front();
      }
      std::string error;
      std::size_t produced = 0;
      try {
        if (!inflater) inflater = make_gzip_member_inflater(options_.zlib);
        produced = inflater->inflate(std::span(mb->in.data(), mb->in_size), std::span(mb->out.data(), mb->out_size), error);
      } catch (const std::exception& e) {
        error = e.what();
      }
      {
        std::lock_guard lock(m_);
        mb->produced = produced;
        mb->error = std::move(error);
        mb->done = true;
      }
      cv_done_.notify_one();
    }
  }

  std::unique_ptr<ByteSource> src_;
  std::string what_;
  GzipDecoderOptions options_;

  // Reader side only.
  std::deque<std::unique_ptr<Member>> window_;  // in stream order; read from the front
  std::vector<std::unique_ptr<Member>> spare_;
  std::size_t window_bytes_ = 0;
  std::size_t pos_ = 0;  // in the front member's output
  bool front_done_ = false;
  std::uint64_t offset_ = 0;  // compressed bytes read from the source
  bool reading_ahead_ = true;
  std::unique_ptr<ByteSource> serial_;   // the rest of the stream, once the window has drained
  std::exception_ptr source_error_;      // thrown once the window has drained

  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::deque<Member*> queue_;  // members not yet taken by a worker
  bool stopping_ = false;
  std::vector<std::thread> workers_;  // last: joined by the destructor before the rest goes
};

}  // namespace

std::unique_ptr<ByteSource> make_gzip_decoder(std::unique_ptr<ByteSource> src, std::string what,
                                              GzipDecoderOptions options) {
  if (options.threads == 0) return make_serial_gzip_decoder(std::move(src), std::move(what), options.zlib);
  return std::make_unique<ParallelGzipDecoder>(std::move(src), std::move(what), options);
}

}  // namespace cbuild::oci::internal
