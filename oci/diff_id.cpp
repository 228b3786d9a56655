#include "oci/diff_id.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/compression.h"

namespace cbuild::oci {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = 1u << 20;

Digest hash_all(ByteSource& src) {
  Sha256 h;
  std::vector<std::byte> buf(kChunk);
  for (;;) {
    std::span<const std::byte> v = src.read_view(buf);
    if (v.empty()) return h.finish();
    h.update(v.data(), v.size());
  }
}

}  // namespace

struct DiffIdSink::Impl {
  std::string what;
  std::size_t max_buffered;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<std::byte>> queue;
  std::size_t queued = 0;
  bool closed = false;     // no more input
  bool abandoned = false;  // the owner gave up: the thread stops at its next read
  bool done = false;       // the thread has ended
  std::optional<Digest> result;
  std::exception_ptr error;
  std::thread thread;
  std::vector<std::byte> pending;  // the writer's, not yet queued
  std::vector<std::vector<std::byte>> spare;  // chunks the decoder is done with, for reuse

  // The decoder's input: the queued chunks, in order.
  class Channel final : public ByteSource {
   public:
    explicit Channel(Impl& s) : s_(s) {}
    std::size_t read(std::span<std::byte> out) override {
      std::span<const std::byte> v = read_view(out);
      if (v.data() != out.data()) std::copy(v.begin(), v.end(), out.begin());
      return v.size();
    }
    std::span<const std::byte> read_view(std::span<std::byte> scratch) override {
      if (pos_ == cur_.size()) {
        std::unique_lock lk(s_.mu);
        s_.cv.wait(lk, [&] { return !s_.queue.empty() || s_.closed || s_.abandoned; });
        if (s_.abandoned) throw Error(ErrorKind::Cancelled, s_.what + ": abandoned");
        if (s_.queue.empty()) return {};
        if (cur_.capacity() > 0 && s_.spare.size() < 2) s_.spare.push_back(std::move(cur_));
        cur_ = std::move(s_.queue.front());
        s_.queue.pop_front();
        s_.queued -= cur_.size();
        pos_ = 0;
        s_.cv.notify_all();
      }
      std::size_t n = std::min(scratch.size(), cur_.size() - pos_);
      std::span<const std::byte> v(cur_.data() + pos_, n);
      pos_ += n;
      return v;
    }

   private:
    Impl& s_;
    std::vector<std::byte> cur_;
    std::size_t pos_ = 0;
  };

  // Writer side: hands the gathered bytes to the decoder, waiting while it is behind.
  void push_pending() {
    if (pending.empty()) return;
    std::unique_lock lk(mu);
    if (closed) throw Error(ErrorKind::Internal, what + ": diff_id: write after finish");
    cv.wait(lk, [&] { return done || queued < max_buffered; });
    if (!done) {  // else the decoder stopped (its error is reported by diff_id())
      queued += pending.size();
      queue.push_back(std::move(pending));
      cv.notify_all();
    }
    pending = {};
    if (!spare.empty()) {
      pending = std::move(spare.back());
      spare.pop_back();
      pending.clear();
    }
  }

  void run() {
    std::optional<Digest> got;
    std::exception_ptr err;
    try {
      auto plain = open_decompressed(std::make_unique<Channel>(*this), what);
      got = hash_all(*plain);
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard lk(mu);
    result = got;
    error = err;
    done = true;
    // Input the decoder did not take is dropped: the writer must never wait on a dead reader.
    queue.clear();
    queued = 0;
    cv.notify_all();
  }
};

DiffIdSink::DiffIdSink(std::string what, std::size_t max_buffered) : impl_(std::make_unique<Impl>()) {
  impl_->what = std::move(what);
  impl_->max_buffered = std::max<std::size_t>(max_buffered, kChunk);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

DiffIdSink::~DiffIdSink() {
  {
    std::lock_guard lk(impl_->mu);
    if (!impl_->closed) impl_->abandoned = true;
    impl_->cv.notify_all();
  }
  impl_->thread.join();
}

void DiffIdSink::write(std::span<const std::byte> data) {
  Impl& s = *impl_;
  // Writers (curl) hand over small pieces: they are gathered into whole chunks first, so the
  // threads meet once per chunk, not once per piece.
  while (!data.empty()) {
    if (s.pending.capacity() < kChunk) s.pending.reserve(kChunk);
    std::size_t n = std::min(data.size(), kChunk - s.pending.size());
    s.pending.insert(s.pending.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
    data = data.subspan(n);
    if (s.pending.size() == kChunk) s.push_pending();
  }
}

void DiffIdSink::finish() {
  impl_->push_pending();
  std::unique_lock lk(impl_->mu);
  impl_->closed = true;
  impl_->cv.notify_all();
  impl_->cv.wait(lk, [&] { return impl_->done; });
}

Digest DiffIdSink::diff_id() {
  finish();
  std::lock_guard lk(impl_->mu);
  if (impl_->error) {
    try {
      std::rethrow_exception(impl_->error);
    } catch (const Error& e) {
      throw Error(ErrorKind::DataLoss, impl_->what + ": cannot compute its diff_id: " + e.what());
    }
  }
  if (!impl_->result) throw Error(ErrorKind::Internal, impl_->what + ": diff_id: no result");
  return *impl_->result;
}

Digest diff_id_of_blob(const BlobProvider& store, const Descriptor& layer, const std::string& what) {
  auto plain = open_decompressed(store.open(layer.digest), what);
  return hash_all(*plain);
}

DiffIdRecords::DiffIdRecords(const fs::path& store_root) : dir_(store_root / "cache" / "diff_ids") {}

std::optional<Digest> DiffIdRecords::find(const Digest& blob) const {
  std::optional<std::string> text;
  try {
    text = read_file_if_exists(dir_ / blob.hex(), 256);
  } catch (const Error&) {
    return std::nullopt;  // unreadable: recomputed
  }
  if (!text || text->empty() || text->back() != '\n') return std::nullopt;  // torn by a crash
  text->pop_back();
  return Digest::try_parse(*text);
}

void DiffIdRecords::record(const Digest& blob, const Digest& diff_id) const {
  make_dirs(dir_);
  // A record lost in a power failure is only recomputed, so it needs no fsync.
  write_file_atomic(dir_ / blob.hex(), diff_id.str() + "\n", 0644, Durability::RenameOnly);
}

std::size_t DiffIdRecords::remove_orphans() const {
  std::size_t removed = 0;
  std::error_code ec;
  const fs::path blobs = dir_.parent_path().parent_path() / "blobs" / "sha256";
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // a record being written
    std::error_code e2;
    if (!fs::exists(blobs / name, e2) && !e2 && fs::remove(it->path(), e2)) ++removed;
  }
  return removed;
}

void check_diff_ids(const std::vector<Descriptor>& layers, const std::vector<Digest>& computed,
                    const std::vector<Digest>& claimed, const Digest& config, const std::string& what) {
  if (claimed.size() != layers.size())
    throw Error(ErrorKind::DataLoss, what + ": the image config " + config.str() + " lists " +
                                         std::to_string(claimed.size()) + " diff_ids for " +
                                         std::to_string(layers.size()) + " layers");
  for (std::size_t i = 0; i < layers.size(); ++i)
    if (computed.at(i) != claimed[i])
      throw Error(ErrorKind::DataLoss, what + ": layer " + layers[i].digest.str() + " has diff_id " +
                                           computed[i].str() + ", but the image config " + config.str() +
                                           " says " + claimed[i].str() + "; the image is rejected");
}

}  // namespace cbuild::oci
