// BlobStream — uploads a blob to a repository while it is being made, before its digest is
// known: the way `docker push` sends a layer (POST an upload session, one PATCH whose body is
// the whole blob sent with chunked transfer encoding, then PUT ?digest= with no body). A build
// that pushes gives each layer of its final image one, fed with the compressed bytes as the
// layer writer produces them, so the upload runs beside the build instead of after it, and
// the push then finds the blob in place (its HEAD answers 200).
//
// It is an optimisation that never changes a result: whatever goes wrong (the registry refuses
// a streamed PATCH, the connection breaks) ends the stream quietly — its session is cancelled
// with a DELETE — and the pusher uploads the blob as it always does. So write() and close()
// never throw for the upload's sake: the bytes are buffered in memory and a thread of its own
// sends them. At most Options::max_buffered wait there. A registry slower than the writer
// holds write() back (its pace is what the push would take anyway), but for no more than
// Options::max_blocked in all: a blob the registry turns out to have already must not cost a
// slow link's time. Past that the buffer is dropped and write() no longer waits; once the
// blob is complete (close()) the rest is read from Options::reopen (the store), from where
// the registry stands. Without reopen the stream gives up instead.
// complete() waits for the upload.
//
// Thread-safe between its own thread and one caller; the caller's calls are not concurrent.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "oci/descriptor.h"
#include "oci/stream.h"
#include "registry-client/reference.h"
#include "registry-client/transport.h"

namespace cbuild::registry {

class BlobStream final : public oci::ByteSink {
 public:
  struct Options {
    // Bytes written but not yet sent beyond which write() waits (see above).
    std::size_t max_buffered = 64u << 20;
    // How long write() may wait for the registry, in all; 0: never (the buffer is dropped).
    std::chrono::milliseconds max_blocked{5000};
    // The complete blob's bytes, from the start (the store's open()); may be empty.
    std::function<std::unique_ptr<oci::ByteSource>(const oci::Descriptor&)> reopen;
  };

  // Starts the session in the background; `transport` must outlive the stream.
  BlobStream(Transport& transport, Reference dest, Options options);
  BlobStream(Transport& transport, Reference dest) : BlobStream(transport, std::move(dest), Options{}) {}
  // Abandons the upload unless complete() made the blob.
  ~BlobStream() override;
  BlobStream(const BlobStream&) = delete;
  BlobStream& operator=(const BlobStream&) = delete;

  // The blob's next bytes. Waits while the buffer is full, max_blocked in all (see above);
  // never throws for the upload.
  void write(std::span<const std::byte> data) override;
  using ByteSink::write;
  // Every byte is written, and they make `blob`.
  void close(const oci::Descriptor& blob);
  // Waits for the body to be sent and commits it under the digest given to close(). True when
  // the registry now holds the blob; false when the stream was given up, failed, or close()
  // was never called (why: failure()). When `unless_present`, the blob is first looked up
  // (HEAD): a registry that has it already keeps its copy, the stream is abandoned, and the
  // answer is true without waiting for the body (a layer the build made again, byte for byte)
  // beyond its last few MiB, which are sent so the cancelled session is not written to after
  // its DELETE.
  bool complete(bool unless_present = true);
  // Stops sending and cancels the session (best effort). Idempotent.
  void abandon() noexcept;

  const std::optional<oci::Descriptor>& blob() const noexcept { return blob_; }
  // complete() committed this stream's upload (not a copy the registry had).
  bool committed() const;
  std::string failure() const;
  std::uint64_t bytes_sent() const noexcept { return sent_.load(); }
  // The buffer was dropped; the rest is read from Options::reopen after close().
  bool spilled() const;

 private:
  class Body;
  void run() noexcept;
  void give_up(std::string why);

  Transport& t_;
  Reference dest_;
  Options opts_;
  std::optional<oci::Descriptor> blob_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<std::byte>> queue_;
  std::size_t buffered_ = 0;
  bool closed_ = false;     // no more writes
  bool spilled_ = false;    // the buffer was dropped: the rest comes from opts_.reopen
  std::chrono::steady_clock::duration blocked_{};  // write()'s waits so far
  bool body_done_ = false;  // the PATCH ended (well or not)
  bool failed_ = false;
  bool committed_ = false;
  std::string failure_;
  std::string location_;  // the session's URL, after the POST and after the PATCH
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sent_{0};
  std::thread thread_;
};

}  // namespace cbuild::registry
