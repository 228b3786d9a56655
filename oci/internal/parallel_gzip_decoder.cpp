// make_gzip_decoder (codec.h): inflates the sized members of cbuild's framed gzip layers on
// worker threads, in order, and hands anything else to the serial decoder.
//
// Why: inflate is the one step of reading a layer that does not overlap with anything else —
// one core inflates while the read-ahead thread hashes — so members must be found without
// inflating them, which the sized header (gzip_sized_header.h) allows.
//
// Each worker in turn takes the source (one at a time, so it is read in order), reads one whole
// member into a buffer and appends it to the window, then lets go of the source and inflates
// the member into a buffer of the size its header announces; read() returns views of the
// oldest member's output. The reading thread only waits for that member, never for input.
// The window holds at most kWindowMembers members (those being read included), and a member is
// only taken while the others hold less than kWindowBytes of input plus output. The reader
// sees EOF only after the source returned 0 (a VerifyingSource has checked the digest).
// Errors keep their place: a member that fails yields the bytes it inflated before the fault
// and then throws; an error of the source is thrown after every member read before it. The
// first member without a sized header (or with sizes over kMaxMemberBytes) ends reading ahead:
// once the window is drained, that member and all after it go through the serial decoder on
// the reading thread.
#include <sys/mman.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "oci/base/error.h"
#include "oci/internal/codec.h"
#include "oci/internal/gzip_sized_header.h"
#include "oci/internal/prefix_source.h"

namespace cbuild::oci::internal {
namespace {

constexpr std::size_t kWindowMembers = 4;
constexpr std::size_t kWindowBytes = 32u << 20;
// Twice cbuild's usual largest frame (max_frame plus one tar writer chunk, 8 MiB): a member
// whose size field says more is left to the serial decoder rather than allocated.
constexpr std::uint32_t kMaxMemberBytes = 16u << 20;

// Grows in steps of 2 MiB without zero-filling, asks for transparent huge pages, and keeps its
// pages between members: in a VM a page fault costs microseconds, and 4 KiB pages would take
// one per 4 KiB of every member's input and output.
class Buffer {
 public:
  std::uint8_t* reserve(std::size_t n) {
    if (n > cap_) {
      std::size_t cap = (n + kStep - 1) / kStep * kStep;
      void* p = std::aligned_alloc(kStep, cap);
      if (!p) throw std::bad_alloc();
      p_.reset(static_cast<std::uint8_t*>(p));
      cap_ = cap;
      madvise(p, cap, MADV_HUGEPAGE);  // a hint: without THP it fails and nothing changes
    }
    return p_.get();
  }
  std::uint8_t* data() const noexcept { return p_.get(); }
  std::size_t capacity() const noexcept { return cap_; }

 private:
  static constexpr std::size_t kStep = 2u << 20;
  struct Free {
    void operator()(std::uint8_t* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<std::uint8_t, Free> p_;
  std::size_t cap_ = 0;
};

// One entry of the window: a member to inflate, or where reading ahead ended (an error of the
// source, or the first member left to the serial decoder).
struct Member {
  enum class Kind { Data, SourceError, Rest } kind = Kind::Data;
  Buffer in, out;
  std::size_t in_size = 0, out_size = 0;
  std::uint64_t offset = 0;  // of the member in the compressed stream
  std::exception_ptr source_error;  // SourceError
  std::string rest;                 // Rest: the bytes read of it so far
  // Written by the inflating thread before `done`, read by the reader after it (under m_).
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
    cv_space_.notify_all();
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
    if (!started_) start();
    for (;;) {
      if (serial_) return serial_->read_view(scratch);
      if (workers_.empty()) read_alone();
      Member* f = nullptr;
      {
        std::unique_lock lock(m_);
        cv_done_.wait(lock, [&] { return window_.empty() ? ended_ : window_.front()->done; });
        if (window_.empty()) return {};
        f = window_.front().get();
      }
      if (f->kind == Member::Kind::SourceError) std::rethrow_exception(f->source_error);
      if (f->kind == Member::Kind::Rest) {
        std::lock_guard src_lock(src_m_);  // reading has ended: no worker touches src_ again
        serial_ = make_serial_gzip_decoder(std::make_unique<PrefixSource>(std::move(f->rest), std::move(src_)), what_,
                                           options_.zlib);
        pop_front();
        continue;
      }
      if (pos_ < f->produced) {
        std::size_t n = std::min(scratch.size(), f->produced - pos_);
        std::span<const std::byte> v(reinterpret_cast<const std::byte*>(f->out.data()) + pos_, n);
        pos_ += n;
        return v;
      }
      if (!f->error.empty())
        throw Error(ErrorKind::DataLoss, what_ + ": " + f->error + " (gzip member at compressed byte " +
                                             std::to_string(f->offset) + ")");
      pop_front();  // the last view of it was returned by the previous call
    }
  }
  using ByteSource::read;

 private:
  // The reader reads the first member itself: only a sized one starts the workers (a gzip from
  // elsewhere never costs a thread), and it inflates that one while they read the next.
  void start() {
    started_ = true;
    Member* first = nullptr;
    {
      std::unique_ptr<Member> mb = take_spare();
      std::lock_guard src_lock(src_m_);
      first = read_member(std::move(mb));
    }
    if (!first) return;
    try {
      for (unsigned i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { work(); });
    } catch (const std::system_error&) {
      // Out of threads: go on with those that started, or alone (read_view reads ahead then).
    }
    inflate(*first, own_inflater_);
  }

  // Without workers the reader reads and inflates each member when it needs it.
  void read_alone() {
    {
      std::lock_guard lock(m_);
      if (!window_.empty() || ended_) return;
    }
    std::unique_ptr<Member> mb = take_spare();
    Member* job = nullptr;
    {
      std::lock_guard src_lock(src_m_);
      job = read_member(std::move(mb));
    }
    if (job) inflate(*job, own_inflater_);
  }

  void work() {
    std::unique_ptr<GzipMemberInflater> inflater;
    for (;;) {
      std::unique_ptr<Member> mb;
      {
        std::unique_lock lock(m_);
        cv_space_.wait(lock, [&] {
          return stopping_ || ended_ || (window_.size() + taking_ < kWindowMembers && window_bytes_ < kWindowBytes);
        });
        if (stopping_ || ended_) return;
        ++taking_;  // counts against the window while it is being read
      }
      mb = take_spare();
      Member* job = nullptr;
      {
        std::lock_guard src_lock(src_m_);
        job = read_member(std::move(mb));
      }
      {
        std::lock_guard lock(m_);
        --taking_;
      }
      if (!job) return;
      inflate(*job, inflater);
    }
  }

  // With src_m_ held: reads the next member and appends it to the window; returns it when it
  // is to be inflated (else reading has ended, with or without a marker in the window).
  Member* read_member(std::unique_ptr<Member> mb) {
    if (!reading_) return nullptr;
    mb->offset = offset_;
    try {
      std::uint8_t head[kSizedGzipHeaderSize];
      std::size_t got = fill(head, sizeof head);
      if (got == 0) {
        end(nullptr);
        return nullptr;
      }
      auto sizes = parse_sized_gzip_header(std::span(head, got));
      if (!sizes || sizes->compressed < kSizedGzipHeaderSize || sizes->compressed > kMaxMemberBytes ||
          sizes->uncompressed > kMaxMemberBytes) {
        mb->kind = Member::Kind::Rest;
        mb->rest.assign(reinterpret_cast<const char*>(head), got);
        mb->done = true;
        end(std::move(mb));
        return nullptr;
      }
      mb->out_size = sizes->uncompressed;
      std::uint8_t* in = mb->in.reserve(sizes->compressed);
      std::memcpy(in, head, sizeof head);
      // Short only at the end of the source: inflate reports the member as truncated.
      mb->in_size = sizeof head + fill(in + sizeof head, sizes->compressed - sizeof head);
      mb->out.reserve(mb->out_size);
    } catch (...) {
      mb->kind = Member::Kind::SourceError;
      mb->source_error = std::current_exception();
      mb->done = true;
      end(std::move(mb));
      return nullptr;
    }
    Member* job = mb.get();
    {
      std::lock_guard lock(m_);
      window_bytes_ += job->in_size + job->out_size;
      window_.push_back(std::move(mb));
    }
    return job;
  }

  // With src_m_ held: no member after this one (`marker`, if any, goes last into the window).
  void end(std::unique_ptr<Member> marker) {
    reading_ = false;
    {
      std::lock_guard lock(m_);
      if (marker) window_.push_back(std::move(marker));
      ended_ = true;
    }
    cv_done_.notify_one();
    cv_space_.notify_all();
  }

  // Reads up to n bytes; fewer only at the end of the source (with src_m_ held).
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

  void inflate(Member& mb, std::unique_ptr<GzipMemberInflater>& inflater) {
    std::string error;
    std::size_t produced = 0;
    try {
      if (!inflater) inflater = make_gzip_member_inflater(options_.zlib);
      produced = inflater->inflate(std::span(mb.in.data(), mb.in_size), std::span(mb.out.data(), mb.out_size), error);
    } catch (const std::exception& e) {
      error = e.what();
    }
    {
      std::lock_guard lock(m_);
      mb.produced = produced;
      mb.error = std::move(error);
      mb.done = true;
    }
    cv_done_.notify_one();
  }

  std::unique_ptr<Member> take_spare() {
    std::lock_guard lock(m_);
    if (spare_.empty()) return std::make_unique<Member>();
    std::unique_ptr<Member> mb = std::move(spare_.back());
    spare_.pop_back();
    return mb;
  }

  void pop_front() {
    {
      std::lock_guard lock(m_);
      std::unique_ptr<Member> mb = std::move(window_.front());
      window_.pop_front();
      window_bytes_ -= mb->in_size + mb->out_size;
      if (mb->kind == Member::Kind::Data && spare_.size() < kWindowMembers &&
          mb->in.capacity() + mb->out.capacity() <= kWindowBytes / 2) {
        mb->in_size = mb->out_size = mb->produced = 0;
        mb->error.clear();
        mb->done = false;
        spare_.push_back(std::move(mb));
      }
    }
    pos_ = 0;
    cv_space_.notify_one();
  }

  std::unique_ptr<ByteSource> src_;
  std::string what_;
  GzipDecoderOptions options_;

  // Reader thread only.
  bool started_ = false;
  std::size_t pos_ = 0;  // in the front member's output
  std::unique_ptr<ByteSource> serial_;  // the rest of the stream, after a Rest marker
  std::unique_ptr<GzipMemberInflater> own_inflater_;

  // The source and where reading it stands: one thread at a time reads a whole member.
  std::mutex src_m_;
  std::uint64_t offset_ = 0;
  bool reading_ = true;

  std::mutex m_;
  std::condition_variable cv_done_, cv_space_;
  std::deque<std::unique_ptr<Member>> window_;  // in stream order; the reader reads the front
  std::vector<std::unique_ptr<Member>> spare_;
  std::size_t window_bytes_ = 0;
  std::size_t taking_ = 0;  // members workers are reading, not yet in the window
  bool ended_ = false;       // nothing will be added to the window
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
