// FramedCompressSink (compression.h): frames cut on content-defined tar boundaries, compressed
// by a small pool of workers, written downstream strictly in order.
//
// Ordering and determinism: frame boundaries are decided on the writing thread from the byte
// counts and fingerprints alone; workers only turn one frame's bytes into one member/frame.
// So the output does not depend on the number of workers or on their timing.
// Three roles: the writing thread fills frames (and, with a cache, hashes each frame's key as its
// bytes arrive), workers compress them, and an emitting thread writes finished frames downstream
// in order (there the compressed bytes are hashed and written to the store, and write(2) may
// sleep on dirty-page throttling) — so the writing thread never waits on the file system, and on
// two cores there is always a thread with work.
// Memory: at most threads + 3 frames (input + output) are alive at once.
//
// Checkpoints: with hash_input, the emitting thread hashes the input in order (the DiffID) while
// downstream hashes the compressed bytes. Both hashes over a stream's first n frames depend only
// on those frames' keys (which name their uncompressed bytes and encoder) and compressed sizes,
// so the emitter chains them into one name per prefix; a layer written before that had the same
// prefix recorded both hash states after each frame under that name, and restoring them skips
// hashing the whole prefix: in a rebuild where one file changed, only the frames from that file
// on are hashed.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "oci/base/error.h"
#include "oci/compression.h"

namespace cbuild::oci {

std::string frame_cache_key(std::string_view encoder_id, const Digest& uncompressed) {
  return std::string(encoder_id) + " " + uncompressed.str();
}

bool FrameCache::find_checkpoint(const std::string&, HashCheckpoint&) { return false; }

namespace {

// A run of a frame's input that is file data of known content (BoundaryListener::known_content).
struct KnownRun {
  std::uint64_t start = 0;  // in the frame's input
  std::uint64_t size = 0;
  std::uint64_t file_offset = 0;
  Digest content;
};

void put_u64(Sha256& h, std::uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  h.update(b, 8);
}

// A run of a frame's input that is not known file data, hashed as it was written.
struct LiteralRun {
  std::uint64_t start = 0;  // in the frame's input
  std::uint64_t size = 0;
  Digest digest;
};

// The "refs:" identity of a frame (compression.h): a SHA-256 over a self-delimiting description
// of the frame in input order, literal runs as 'L' <length> <their digest>, known runs as 'F'
// <length> <content digest> <offset>.
std::string refs_key(std::string_view encoder_id, const std::vector<LiteralRun>& lits, const std::vector<KnownRun>& runs) {
  Sha256 h;
  static constexpr char kTag[] = "cbuild frame refs v2";
  h.update(kTag, sizeof kTag);
  auto l = lits.begin();
  auto literal = [&](const LiteralRun& r) {
    h.update("L", 1);
    put_u64(h, r.size);
    std::string hex = r.digest.hex();
    h.update(hex.data(), hex.size());
  };
  for (const KnownRun& r : runs) {
    for (; l != lits.end() && l->start < r.start; ++l) literal(*l);
    h.update("F", 1);
    put_u64(h, r.size);
    std::string hex = r.content.hex();
    h.update(hex.data(), hex.size());
    put_u64(h, r.file_offset);
  }
  for (; l != lits.end(); ++l) literal(*l);
  return std::string(encoder_id) + " refs:" + h.finish().hex();
}

// A frame's input. Unlike std::string, growing it does not zero-fill, so file data can be read
// straight into it (write_room): the writing thread then copies nothing.
class FrameBytes {
 public:
  const char* data() const noexcept { return p_.get(); }
  std::size_t size() const noexcept { return n_; }
  bool empty() const noexcept { return n_ == 0; }
  std::size_t capacity() const noexcept { return cap_; }
  void clear() noexcept { n_ = 0; }
  void reserve(std::size_t c) {
    if (c <= cap_) return;
    auto q = std::make_unique_for_overwrite<char[]>(c);
    if (n_) std::memcpy(q.get(), p_.get(), n_);
    p_ = std::move(q);
    cap_ = c;
  }
  void append(const char* s, std::size_t k) {
    if (n_ + k > cap_) reserve(std::max(cap_ * 2, n_ + k));
    std::memcpy(p_.get() + n_, s, k);
    n_ += k;
  }
  char* end() noexcept { return p_.get() + n_; }
  void grow(std::size_t k) noexcept { n_ += k; }  // k bytes were written at end(), within capacity
  operator std::string_view() const noexcept { return {p_.get(), n_}; }

 private:
  std::unique_ptr<char[]> p_;
  std::size_t n_ = 0, cap_ = 0;
};

struct Job {
  std::uint64_t index = 0;
  std::uint64_t offset = 0;
  FrameBytes input;
  std::string output;
  std::string key;
  bool reused = false;
  bool done = false;
  std::exception_ptr error;
};

}  // namespace

struct FramedCompressSink::Impl {
  Impl(ByteSink& o, FramingOptions opt) : out(o), options(std::move(opt)) {
    options.level = resolve_level(options.codec, options.level);
    if (options.codec == Codec::None) throw Error(ErrorKind::InvalidArgument, "framed compression needs gzip or zstd");
    if (options.min_frame == 0 || options.max_frame < options.min_frame || options.hard_max < options.max_frame)
      throw Error(ErrorKind::InvalidArgument, "framed compression: inconsistent frame sizes");
    id = encoder_id(options.codec, options.level);
    mask = options.cut_bits >= 64 ? ~0ull : ((1ull << options.cut_bits) - 1);
    need_digest = options.cache != nullptr || static_cast<bool>(options.on_frame);
    if (options.hash_input && options.cache) resumable = dynamic_cast<ResumableHash*>(&out);
    if (resumable) chain = Sha256{}.finish().hex();  // the empty prefix
    if (options.threads == 0) inline_encoder = make_frame_encoder(options.codec, options.level);
    for (unsigned i = 0; i < options.threads; ++i) workers.emplace_back([this] { work(); });
    if (options.threads > 0) emitter = std::thread([this] { emit_loop(); });
    cur.reserve(options.max_frame + (1u << 20));
  }

  ~Impl() { stop_threads(); }

  void stop_threads() noexcept {
    {
      std::lock_guard lock(m);
      stopping = true;
    }
    cv_work.notify_all();
    cv_done.notify_all();
    for (auto& t : workers)
      if (t.joinable()) t.join();
    workers.clear();
    if (emitter.joinable()) emitter.join();
  }

  // Turns one frame's bytes into compressed bytes (cache lookup first; the key was set by cut()).
  // Runs on a worker, or on the writing thread when threads == 0.
  void process(Job& job, FrameEncoder& enc) {
    if (options.cache && job.input.size() >= options.cache_min) {
      const std::string& key = job.key;
      if (options.cache->find(key, job.output)) {
        job.reused = true;
        return;
      }
      job.output.clear();
      enc.encode(std::as_bytes(std::span(job.input.data(), job.input.size())), job.output);
      options.cache->put(key, job.output);
      return;
    }
    enc.encode(std::as_bytes(std::span(job.input.data(), job.input.size())), job.output);
  }

  void work() {
    std::unique_ptr<FrameEncoder> enc;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock lock(m);
        cv_work.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        job = queue.front();
        queue.pop_front();
      }
      try {
        if (!enc) enc = make_frame_encoder(options.codec, options.level);
        process(*job, *enc);
      } catch (...) {
        job->error = std::current_exception();
      }
      {
        std::lock_guard lock(m);
        job->done = true;
      }
      cv_done.notify_all();  // the emitter waits for the oldest frame
    }
  }

  // The next n bytes appended to `cur` are the pending known run's; extends the last run when
  // it continues it, so the description does not depend on how the bytes were chunked.
  void note_known(std::size_t n) {
    if (!cur_known.empty()) {
      KnownRun& last = cur_known.back();
      if (last.start + last.size == cur.size() && last.content == pending_content &&
          last.file_offset + last.size == pending_offset) {
        last.size += n;
        pending_offset += n;
        pending_left -= n;
        return;
      }
    }
    cur_known.push_back(KnownRun{cur.size(), n, pending_offset, pending_content});
    pending_offset += n;
    pending_left -= n;
  }

  // Literal bytes are hashed on the writing thread as they arrive, while they are still in this
  // core's cache (they were just read into `cur`): hashing them again later, from memory, on a
  // worker, was a quarter slower.
  void literal(const char* p, std::size_t n) {
    if (lit_size == 0) lit_start = cur.size();
    lit_hash.update(p, n);
    lit_size += n;
  }

  void close_literal() {
    if (lit_size == 0) return;
    cur_lits.push_back(LiteralRun{lit_start, lit_size, lit_hash.finish()});
    lit_size = 0;
  }

  std::string frame_key() {
    close_literal();
    if (!cur_known.empty()) return refs_key(id, cur_lits, cur_known);
    // All literal: one run covering the frame (none for an empty frame).
    return frame_cache_key(id, cur_lits.empty() ? Sha256{}.finish() : cur_lits.front().digest);
  }

  void cut() {
    if (cur.empty() && next_index > 0) return;
    std::unique_ptr<Job> job = take_job();
    if (need_digest) job->key = frame_key();
    cur_lits.clear();
    job->index = next_index++;
    job->offset = uncompressed_total;
    uncompressed_total += cur.size();
    // Swap buffers instead of allocating: a recycled job brings back an input buffer with its
    // capacity, so steady state does no allocation and takes no page faults.
    std::swap(job->input, cur);
    cur.clear();
    cur_known.clear();
    if (cur.capacity() < options.max_frame) cur.reserve(options.max_frame + (1u << 20));
    if (options.threads == 0) {
      process(*job, *inline_encoder);
      job->done = true;
      emit(*job);
      recycle(std::move(job));
      return;
    }
    Job* raw = job.get();
    std::unique_lock lock(m);
    inflight.push_back(std::move(job));
    queue.push_back(raw);
    cv_work.notify_one();
    // Back-pressure: the writing thread runs at most a few frames ahead of the emitter.
    cv_space.wait(lock, [&] { return inflight.size() <= options.threads + 2 || emit_error; });
    if (emit_error) std::rethrow_exception(emit_error);
  }

  std::unique_ptr<Job> take_job() {
    std::lock_guard lock(m);
    if (emit_error) std::rethrow_exception(emit_error);
    if (spare.empty()) return std::make_unique<Job>();
    std::unique_ptr<Job> j = std::move(spare.back());
    spare.pop_back();
    return j;
  }

  void recycle(std::unique_ptr<Job> j) {
    j->input.clear();
    j->output.clear();
    j->key.clear();
    j->reused = false;
    j->done = false;
    j->error = nullptr;
    spare.push_back(std::move(j));
  }

  // The emitting thread: writes finished frames downstream in stream order until close() has
  // been called and nothing is left, or the sink is destroyed. The first error (a worker's,
  // rethrown by emit(), or downstream's) stops it and is rethrown on the writing thread.
  void emit_loop() {
    for (;;) {
      std::unique_ptr<Job> front;
      {
        std::unique_lock lock(m);
        cv_done.wait(lock, [&] {
          return stopping || (!inflight.empty() && inflight.front()->done) || (closing && inflight.empty());
        });
        if (stopping || inflight.empty()) return;
        front = std::move(inflight.front());
        inflight.pop_front();
      }
      cv_space.notify_one();
      try {
        emit(*front);
      } catch (...) {
        std::lock_guard lock(m);
        emit_error = std::current_exception();
        cv_space.notify_all();
        return;
      }
      std::lock_guard lock(m);
      recycle(std::move(front));
    }
  }

  // Writing thread: lets the emitter finish what is in flight and waits for it.
  void close() {
    {
      std::lock_guard lock(m);
      closing = true;
    }
    cv_done.notify_all();
    if (emitter.joinable()) emitter.join();
    if (emit_error) std::rethrow_exception(emit_error);
  }

  // Emitting thread (the writing thread when threads == 0), in stream order.
  void emit(Job& job) {
    if (job.error) std::rethrow_exception(job.error);
    const auto output = std::as_bytes(std::span(job.output.data(), job.output.size()));
    bool resumed = false;
    if (resumable) {
      Sha256 c;
      c.update(chain);
      c.update(job.key);
      put_u64(c, job.output.size());
      chain = c.finish().hex();
      HashCheckpoint cp;
      // The byte counts are a cheap sanity check: a checkpoint of another position is a miss.
      if (job.input.size() >= options.cache_min && options.cache->find_checkpoint(chain, cp) &&
          cp.uncompressed.bytes == job.offset + job.input.size() &&
          cp.compressed.bytes == compressed_total + job.output.size()) {
        input_hash.restore(cp.uncompressed);
        resumable->write_hashed(output, cp.compressed);
        resumed = true;
        ++frames_resumed;
      }
    }
    if (!resumed) {
      if (options.hash_input) input_hash.update(job.input.data(), job.input.size());
      out.write(output);
    }
    FrameRecord rec;
    rec.index = job.index;
    rec.uncompressed_offset = job.offset;
    rec.uncompressed_size = job.input.size();
    rec.compressed_offset = compressed_total;
    rec.compressed_size = job.output.size();
    rec.key = job.key;
    rec.reused = job.reused;
    if (resumable) {
      rec.chain = chain;
      if (job.input.size() >= options.cache_min)
        rec.checkpoint = HashCheckpoint{input_hash.state(), resumable->hash_state()};
      rec.resumed = resumed;
    }
    compressed_total += job.output.size();
    ++frames_emitted;
    if (job.reused) ++frames_reused;
    if (options.on_frame) options.on_frame(rec);
  }

  ByteSink& out;
  FramingOptions options;
  std::string id;
  std::uint64_t mask = 1;
  bool need_digest = false;
  std::unique_ptr<FrameEncoder> inline_encoder;
  // Emitting thread only (read by the writing thread after it joined): hash_input's hash, and
  // with checkpoints the downstream's resumable hash and the chain over the frames so far.
  Sha256 input_hash;
  Digest input_digest;
  ResumableHash* resumable = nullptr;
  std::string chain;
  std::uint64_t frames_resumed = 0;

  FrameBytes cur;
  std::vector<KnownRun> cur_known;  // known file data in `cur`, canonical (adjacent runs merged)
  std::vector<LiteralRun> cur_lits;  // the other runs of `cur`, closed so far
  Sha256 lit_hash;                   // over the open literal run
  std::uint64_t lit_start = 0, lit_size = 0;
  // The announced run not yet fully written (known_content → write).
  Digest pending_content;
  std::uint64_t pending_offset = 0, pending_left = 0;
  std::uint64_t next_index = 0, uncompressed_total = 0, compressed_total = 0;
  std::uint64_t frames_emitted = 0, frames_reused = 0;
  bool finished = false;

  std::mutex m;
  std::condition_variable cv_work, cv_done, cv_space;
  std::deque<std::unique_ptr<Job>> inflight;  // in stream order; owned here
  std::deque<Job*> queue;                     // not yet taken by a worker
  std::vector<std::unique_ptr<Job>> spare;    // emitted jobs kept for their buffers
  bool stopping = false, closing = false;
  std::exception_ptr emit_error;
  std::vector<std::thread> workers;
  std::thread emitter;
};

FramedCompressSink::FramedCompressSink(ByteSink& out, FramingOptions options)
    : impl_(std::make_unique<Impl>(out, std::move(options))) {}

FramedCompressSink::~FramedCompressSink() = default;

void FramedCompressSink::write(std::span<const std::byte> data) {
  Impl& d = *impl_;
  if (d.finished) throw Error(ErrorKind::FailedPrecondition, "write after finish on a framed compressing sink");
  while (!data.empty()) {
    std::size_t room = d.options.hard_max - d.cur.size();
    std::size_t n = std::min(room, data.size());
    if (d.pending_left > 0) {
      n = static_cast<std::size_t>(std::min<std::uint64_t>(n, d.pending_left));
      if (d.need_digest) {
        d.close_literal();
        d.note_known(n);
      } else {
        d.pending_left -= n;
      }
    } else if (d.need_digest) {
      d.literal(reinterpret_cast<const char*>(data.data()), n);
    }
    if (reinterpret_cast<const char*>(data.data()) == d.cur.end() && d.cur.size() + n <= d.cur.capacity()) {
      d.cur.grow(n);  // filled in place (write_room)
    } else {
      d.cur.append(reinterpret_cast<const char*>(data.data()), n);
    }
    data = data.subspan(n);
    if (d.cur.size() >= d.options.hard_max) d.cut();
  }
}

std::span<std::byte> FramedCompressSink::write_room(std::size_t want) {
  Impl& d = *impl_;
  if (d.finished) return {};
  // No more than the frame can take before it must be cut, so the whole span is accounted
  // before cut() hands this buffer to a worker.
  std::size_t n = std::min(want, d.options.hard_max - d.cur.size());
  // Grow by half at least (never past hard_max): a frame that outgrows its reservation is not
  // copied once per read.
  if (d.cur.size() + n > d.cur.capacity())
    d.cur.reserve(std::min(std::max(d.cur.size() + n, d.cur.capacity() + d.cur.capacity() / 2), d.options.hard_max));
  return {reinterpret_cast<std::byte*>(d.cur.end()), n};
}

void FramedCompressSink::known_content(const Digest& content, std::uint64_t offset, std::uint64_t size) {
  Impl& d = *impl_;
  if (d.pending_left > 0) throw Error(ErrorKind::Internal, "framed compression: known content announced before the last run was written");
  d.pending_content = content;
  d.pending_offset = offset;
  d.pending_left = size;
}

void FramedCompressSink::boundary(std::uint64_t fingerprint) {
  Impl& d = *impl_;
  if (d.finished || d.cur.size() < d.options.min_frame) return;
  if (d.cur.size() >= d.options.max_frame || (fingerprint & d.mask) == 0) d.cut();
}

void FramedCompressSink::finish() {
  Impl& d = *impl_;
  if (d.finished) return;
  d.finished = true;
  d.cut();  // the remainder; an empty stream still gets one (empty) frame
  d.close();
  d.stop_threads();
  if (d.options.hash_input) d.input_digest = d.input_hash.finish();
  d.out.finish();
}

std::uint64_t FramedCompressSink::frames() const noexcept { return impl_->frames_emitted; }
std::uint64_t FramedCompressSink::frames_reused() const noexcept { return impl_->frames_reused; }
std::uint64_t FramedCompressSink::frames_resumed() const noexcept { return impl_->frames_resumed; }
std::uint64_t FramedCompressSink::input_bytes() const noexcept { return impl_->uncompressed_total; }

const Digest& FramedCompressSink::input_digest() const {
  if (!impl_->finished || !impl_->options.hash_input)
    throw Error(ErrorKind::FailedPrecondition, "framed compression: the input digest exists after finish() with hash_input");
  return impl_->input_digest;
}

}  // namespace cbuild::oci
