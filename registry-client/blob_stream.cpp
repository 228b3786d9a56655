#include "registry-client/blob_stream.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <utility>

#include "oci/base/error.h"
#include "registry-client/manifest_fetch.h"

namespace cbuild::registry {

namespace {
// Writes are appended to the last piece up to this size, so small writes do not make a queue
// of small vectors.
constexpr std::size_t kPiece = 1u << 20;
// complete() on a blob the registry has: a body with at most this much left to send is sent.
constexpr std::size_t kFinishBelow = 8u << 20;
}  // namespace

// The PATCH body: what write() queued, until close(); Error{Cancelled} once the stream is
// given up, which aborts the exchange.
class BlobStream::Body final : public oci::ByteSource {
 public:
  explicit Body(BlobStream& s) : s_(s) {}
  std::size_t read(std::span<std::byte> out) override {
    if (file_) return from_file(out);
    std::unique_lock lk(s_.mu_);
    s_.cv_.wait(lk, [&] { return s_.stop_.load() || !s_.queue_.empty() || s_.closed_; });
    if (s_.stop_.load()) throw Error(ErrorKind::Cancelled, "the streamed upload was abandoned");
    if (s_.spilled_) {  // closed: the blob is complete where reopen finds it
      const oci::Descriptor blob = *s_.blob_;
      lk.unlock();
      file_ = s_.opts_.reopen(blob);
      oci::skip_bytes(*file_, static_cast<std::int64_t>(s_.sent_.load()));
      return from_file(out);
    }
    if (s_.queue_.empty()) return 0;  // closed, and all sent
    std::vector<std::byte>& front = s_.queue_.front();
    const std::size_t n = std::min(out.size(), front.size() - offset_);
    std::memcpy(out.data(), front.data() + offset_, n);
    offset_ += n;
    if (offset_ == front.size()) {
      s_.queue_.pop_front();
      offset_ = 0;
    }
    s_.buffered_ -= n;
    s_.sent_ += n;
    s_.cv_.notify_all();  // a write() may be waiting for room
    return n;
  }

 private:
  std::size_t from_file(std::span<std::byte> out) {
    if (s_.stop_.load()) throw Error(ErrorKind::Cancelled, "the streamed upload was abandoned");
    const std::size_t n = file_->read(out);
    s_.sent_ += n;
    return n;
  }

  BlobStream& s_;
  std::size_t offset_ = 0;  // into the queue's front piece
  std::unique_ptr<oci::ByteSource> file_;
};

BlobStream::BlobStream(Transport& transport, Reference dest, Options options)
    : t_(transport), dest_(std::move(dest)), opts_(options) {
  thread_ = std::thread([this] { run(); });
}

BlobStream::~BlobStream() {
  bool committed;
  {
    std::lock_guard lk(mu_);
    committed = committed_;
  }
  if (!committed) abandon();
  if (thread_.joinable()) thread_.join();
}

void BlobStream::write(std::span<const std::byte> data) {
  if (data.empty()) return;
  std::unique_lock lk(mu_);
  while (!failed_ && !closed_ && !spilled_ && buffered_ + data.size() > opts_.max_buffered) {
    // A write bigger than the whole buffer goes alone, once the buffer is empty.
    if (buffered_ == 0 && opts_.max_blocked.count() > 0) break;
    const auto left = opts_.max_blocked - blocked_;
    if (left <= std::chrono::steady_clock::duration::zero()) {
      queue_.clear();
      buffered_ = 0;
      if (opts_.reopen) {
        spilled_ = true;  // Body waits for close(), then reads the rest from reopen
      } else {
        failed_ = true;
        failure_ = "the registry fell more than " + std::to_string(opts_.max_buffered >> 20) + " MiB behind";
        stop_ = true;
      }
      cv_.notify_all();
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    cv_.wait_for(lk, left);
    blocked_ += std::chrono::steady_clock::now() - t0;
  }
  if (failed_ || closed_ || spilled_) return;
  if (queue_.empty() || queue_.back().size() >= kPiece) queue_.emplace_back().reserve(std::max(kPiece, data.size()));
  queue_.back().insert(queue_.back().end(), data.begin(), data.end());
  buffered_ += data.size();
  cv_.notify_all();
}

void BlobStream::close(const oci::Descriptor& blob) {
  std::lock_guard lk(mu_);
  blob_ = blob;
  closed_ = true;
  cv_.notify_all();
}

void BlobStream::give_up(std::string why) {
  std::lock_guard lk(mu_);
  if (!failed_) {
    failed_ = true;
    failure_ = std::move(why);
  }
  stop_ = true;
  queue_.clear();
  buffered_ = 0;
  cv_.notify_all();
}

void BlobStream::run() noexcept {
  const std::string what = "streamed upload to " + quote(dest_.str());
  const std::vector<std::string> scopes{repo_scope(dest_.repository(), "pull,push")};
  try {
    Call post;
    post.method = "POST";
    post.path = "/v2/" + dest_.repository() + "/blobs/uploads/";
    post.scopes = scopes;
    post.headers.emplace_back("Content-Length", "0");
    post.what = what;
    // Abandoning must not wait out a registry that does not answer. A session the registry
    // opened just as the POST was cut cannot be cancelled (its location never arrived); the
    // registry purges it with its other stale uploads.
    post.abort = &stop_;
    HttpResponse r = t_.send(post);
    if (r.status != 202 || r.header("location").empty()) {
      give_up("starting the upload session answered HTTP " + std::to_string(r.status));
    } else {
      std::string loc = resolve_url(t_.base_url() + post.path, r.header("location"));
      {
        std::lock_guard lk(mu_);
        location_ = loc;
      }
      if (stop_.load()) throw Error(ErrorKind::Cancelled, "abandoned");
      Call patch;
      patch.method = "PATCH";
      patch.path = loc;
      patch.scopes = scopes;
      patch.headers.emplace_back("Content-Type", "application/octet-stream");
      bool opened = false;
      // A body already partly sent cannot be sent again: a retry ends the stream instead.
      patch.open_body = [this, &opened]() -> std::unique_ptr<oci::ByteSource> {
        if (opened) throw Error(ErrorKind::Unavailable, "a streamed body cannot be sent twice");
        opened = true;
        return std::make_unique<Body>(*this);
      };
      patch.body_size = -1;
      patch.what = what;
      patch.abort = &stop_;
      HttpResponse p = t_.send(patch);
      if (p.status != 202) {
        give_up("the streamed PATCH answered HTTP " + std::to_string(p.status));
      } else if (auto next = p.header("location"); !next.empty()) {
        std::lock_guard lk(mu_);
        location_ = resolve_url(loc, next);
      }
    }
  } catch (const std::exception& e) {
    give_up(e.what());
  }
  std::lock_guard lk(mu_);
  body_done_ = true;
  cv_.notify_all();
}

bool BlobStream::complete(bool unless_present) {
  std::string location;
  {
    std::unique_lock lk(mu_);
    if (committed_) return true;
    if (!blob_) {
      if (!failed_) failure_ = "the blob was never finished";
      return false;
    }
    if (failed_) return false;
    if (unless_present) {
      lk.unlock();
      try {
        Call head;
        head.method = "HEAD";
        head.path = "/v2/" + dest_.repository() + "/blobs/" + blob_->digest.str();
        head.scopes = {repo_scope(dest_.repository(), "pull,push")};
        head.what = "streamed upload to " + quote(dest_.str());
        if (t_.send(head).status == 200) {
          // A PATCH cut midway can leave the registry writing the session after the DELETE
          // removed it; with little left to send, the end of the body is waited for.
          std::unique_lock wait(mu_);
          if (blob_->size - static_cast<std::int64_t>(sent_.load()) <= static_cast<std::int64_t>(kFinishBelow))
            cv_.wait(wait, [&] { return body_done_; });
          wait.unlock();
          abandon();
          return true;
        }
      } catch (const std::exception&) {
        // Not known to be there: the stream goes on.
      }
      lk.lock();
    }
    cv_.wait(lk, [&] { return body_done_; });
    if (failed_) return false;
    if (sent_.load() != static_cast<std::uint64_t>(blob_->size)) {
      lk.unlock();
      give_up("sent " + std::to_string(sent_.load()) + " bytes of a blob of " + std::to_string(blob_->size));
      return false;
    }
    location = location_;
  }
  try {
    Call put;
    put.method = "PUT";
    put.path = with_query(location, "digest=" + blob_->digest.str());
    put.scopes = {repo_scope(dest_.repository(), "pull,push")};
    put.headers.emplace_back("Content-Length", "0");
    put.what = "streamed upload to " + quote(dest_.str());
    HttpResponse r = t_.send(put);
    if (r.status != 201) {
      give_up("committing the upload answered HTTP " + std::to_string(r.status));
      return false;
    }
  } catch (const std::exception& e) {
    give_up(e.what());
    return false;
  }
  std::lock_guard lk(mu_);
  committed_ = true;
  return true;
}

void BlobStream::abandon() noexcept {
  give_up("abandoned");
  if (thread_.joinable()) thread_.join();
  std::string location;
  {
    std::lock_guard lk(mu_);
    if (committed_) return;
    location = std::exchange(location_, std::string());
  }
  if (location.empty()) return;
  try {
    Call del;
    del.method = "DELETE";
    del.path = location;
    del.scopes = {repo_scope(dest_.repository(), "pull,push")};
    del.what = "cancel streamed upload to " + quote(dest_.str());
    t_.send(del);
  } catch (...) {
    // The registry expires abandoned sessions.
  }
}

bool BlobStream::spilled() const {
  std::lock_guard lk(mu_);
  return spilled_;
}

bool BlobStream::committed() const {
  std::lock_guard lk(mu_);
  return committed_;
}

std::string BlobStream::failure() const {
  std::lock_guard lk(mu_);
  return failure_;
}

}  // namespace cbuild::registry
