// Layer compression: codecs, magic-byte detection, streaming compressing sinks, one-shot frame
// encoders (for framed layers) and auto-detecting decompressing sources.
//
// gzip is produced by ISA-L (igzip) when cbuild was built with it (CBUILD_HAVE_ISAL), else by
// zlib; both write a fixed 10-byte header (no name, mtime 0, XFL 0, OS 255), so the output is
// a function of (input, encoder, level) only. Frames (FrameEncoder, so framed layers) add one
// extra field holding the member's compressed and uncompressed sizes, which every gzip reader
// skips and cbuild's uses to inflate members on two threads (internal/gzip_sized_header.h).
// zstd frames carry a content checksum.
// Levels are given in the codec's usual scale (gzip 1–9 as zlib/gzip(1), zstd 1–19); ISA-L
// maps them onto its own levels (1→1, 2–6→2, 7–9→3), which is what encoder_id() reports.
//
// Decompression handles concatenated gzip members / zstd frames (framed layers) and throws
// DataLoss naming `what` for corrupt or truncated input. A gzip decoder may run two threads
// of its own while it is alive (only for members with that size field). Nothing here is thread-safe; use one
// encoder per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "oci/digest.h"
#include "oci/stream.h"
#include "oci/tar_writer.h"

namespace cbuild::oci {

enum class Codec : std::uint8_t { None, Gzip, Zstd };

std::string_view to_string(Codec c) noexcept;  // "none", "gzip", "zstd"
// Parses "gzip" / "zstd" / "none" (also "uncompressed"); throws InvalidArgument otherwise.
Codec parse_codec(std::string_view s);
// The OCI layer media type for a codec (application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]).
std::string_view oci_layer_media_type(Codec c) noexcept;
// The codec from a layer media type (OCI or Docker), or nullopt if it is not a tar layer type.
std::optional<Codec> codec_from_media_type(std::string_view media_type) noexcept;
// Detects gzip (1f 8b) and zstd (28 b5 2f fd) magic; anything else (incl. too short) is None.
Codec detect_codec(std::span<const std::byte> head) noexcept;

// The default level: gzip 6 (ISA-L level 2, the ratio of gzip -6), zstd 3.
int default_level(Codec c) noexcept;
// Resolves level (-1 = default) and validates the range; throws InvalidArgument.
int resolve_level(Codec c, int level);
// Exact identity of the encoder output: library, its version and the effective level, e.g.
// "isal-2.30.0/2", "zlib-1.2.13/6", "zstd-1.5.4/3". Part of every frame-cache key.
std::string encoder_id(Codec c, int level);
// Short form for descriptor annotations: "isal-2", "zlib-6", "zstd-3", "none".
std::string encoder_annotation(Codec c, int level);

// Compresses whole frames: each encode() appends one complete, independent gzip member or zstd
// frame holding `in` to `out`. Deterministic for a given encoder_id().
class FrameEncoder {
 public:
  virtual ~FrameEncoder() = default;
  virtual void encode(std::span<const std::byte> in, std::string& out) = 0;
};
std::unique_ptr<FrameEncoder> make_frame_encoder(Codec c, int level);

// A sink that compresses everything written into ONE gzip member / zstd frame written to
// `out` (not owned). finish() ends the stream and finishes `out`. Codec::None passes through.
std::unique_ptr<ByteSink> make_compress_sink(ByteSink& out, Codec c, int level = -1);

// A source yielding the decompressed bytes of `src` (gzip, zstd or plain, detected by magic).
std::unique_ptr<ByteSource> open_decompressed(std::unique_ptr<ByteSource> src, std::string what = "layer");
// Same with the codec given (no detection); Codec::None returns src itself.
std::unique_ptr<ByteSource> open_decompressed(std::unique_ptr<ByteSource> src, Codec c, std::string what);

// ---- Framed compression (parallel, and the basis of incremental recompression) ----
//
// A framed layer is a concatenation of independent gzip members / zstd frames, which every
// gzip/zstd reader accepts as one stream. Frames are cut at the boundaries the tar writer
// offers (see tar_writer.h): once a frame holds min_frame bytes it is cut at the first boundary
// whose fingerprint has its low `cut_bits` bits clear, and at any boundary once it holds
// max_frame. Fingerprints depend on entry metadata only, so an insertion or a grown file moves
// only the cuts next to it and the other frames keep their exact bytes.

// The two hash states of a framed layer stream just after one of its frames, each over the
// whole stream so far: of the uncompressed bytes (the DiffID) and of the compressed bytes (the
// blob digest).
struct HashCheckpoint {
  Sha256::State uncompressed;
  Sha256::State compressed;
};

// Compressed frames keyed by frame_cache_key(). Called from compression worker threads
// concurrently: implementations must be thread-safe. find() returning bytes that are not the
// compression of the frame corrupts the layer — the key includes encoder_id() for that reason.
class FrameCache {
 public:
  virtual ~FrameCache() = default;
  // On a hit, replaces `out` with the compressed frame and returns true (out's capacity is
  // reused: workers recycle their buffers). On a miss returns false; `out` is then unspecified.
  virtual bool find(const std::string& key, std::string& out) = 0;
  virtual void put(const std::string& key, std::string_view compressed) = 0;
  // The checkpoint recorded after the frame whose FrameRecord::chain was `chain`, in a layer
  // written before. Called from the emitting thread. A cache without checkpoints has none. A
  // checkpoint that is not the true state corrupts the layer's digests, as a wrong frame does.
  virtual bool find_checkpoint(const std::string& chain, HashCheckpoint& out);
};

// A frame's identity, the key of the frame cache: "<encoder_id> <sha256 digest of the
// uncompressed frame>". For a frame holding file data the tar writer vouched for
// (BoundaryListener::known_content), "<encoder_id> refs:<hex>" instead, where hex is the SHA-256
// of a description of the frame: the SHA-256 and length of each run of its other bytes and, for
// each run of such file data, the file's content digest, offset and length — so those bytes are
// not hashed a second time (their DiffID pass hashes them once). Either form names the frame's
// bytes exactly; the two namespaces differ, so no frame of one form can stand for a frame of the
// other. Keys are computed on the writing thread as the bytes arrive.
std::string frame_cache_key(std::string_view encoder_id, const Digest& uncompressed);

struct FrameRecord {
  std::uint64_t index = 0;
  std::uint64_t uncompressed_offset = 0;  // of the frame in the uncompressed stream
  std::uint64_t uncompressed_size = 0;
  std::uint64_t compressed_offset = 0;    // of the frame in the compressed stream
  std::uint64_t compressed_size = 0;
  std::string key;             // frame_cache_key() form; set when a cache or an on_frame hook is given
  bool reused = false;         // taken from the cache rather than compressed
  // With checkpoints (FramingOptions::hash_input, a cache and a ResumableHash downstream):
  // `chain` names the stream up to and including this frame (a SHA-256 over every frame's key
  // and compressed size so far), `checkpoint` holds both hash states after it, and `resumed`
  // says they were taken from the cache rather than computed over this frame's bytes.
  std::string chain;
  std::optional<HashCheckpoint> checkpoint;
  bool resumed = false;
};

struct FramingOptions {
  Codec codec = Codec::Gzip;
  int level = -1;
  unsigned threads = 2;                // compression workers; 0 compresses on the writing thread
  std::size_t min_frame = 1u << 20;    // no cut before this many bytes
  std::size_t max_frame = 4u << 20;    // cut at any boundary past this
  std::size_t hard_max = 32u << 20;    // cut even without a boundary (input that offers none)
  unsigned cut_bits = 1;               // past min_frame, cut when (fingerprint & mask) == 0
  FrameCache* cache = nullptr;
  // Frames with less input than this are compressed without asking the cache, and get no
  // checkpoint: compressing them costs less than a lookup (the store's cache reads its records
  // on the first one, which a build of small layers would otherwise pay for nothing).
  std::size_t cache_min = 64u << 10;
  // Hash the input (the DiffID of a layer) on the emitting thread, in stream order: see
  // input_digest(). With a cache, and when `out` is a ResumableHash, frames whose chain has a
  // checkpoint are not hashed at all, neither their input nor their compressed bytes.
  bool hash_input = false;
  // Called in stream order, one call at a time, after a frame has been written downstream — on
  // the sink's emitting thread (the writing thread when threads == 0); all calls have returned
  // when finish() returns.
  std::function<void(const FrameRecord&)> on_frame;
};

// Compresses what is written into frames on worker threads and writes them to `out` (not
// owned) in order, from an emitting thread of its own (so `out` is used by that thread until
// finish(), which then finishes `out` on the caller's thread). The output is the same whatever the thread count or timing. Use from one
// thread; finish() flushes, waits and finishes `out`; errors of workers are rethrown there or
// in a later write(). Destroying it unfinished stops the workers and drops pending frames.
class FramedCompressSink final : public ByteSink, public BoundaryListener {
 public:
  FramedCompressSink(ByteSink& out, FramingOptions options);
  ~FramedCompressSink() override;
  FramedCompressSink(const FramedCompressSink&) = delete;
  FramedCompressSink& operator=(const FramedCompressSink&) = delete;

  void write(std::span<const std::byte> data) override;
  void boundary(std::uint64_t fingerprint) override;
  void known_content(const Digest& content, std::uint64_t offset, std::uint64_t size) override;
  std::span<std::byte> write_room(std::size_t want) override;
  void finish() override;
  using ByteSink::write;

  std::uint64_t frames() const noexcept;
  std::uint64_t frames_reused() const noexcept;
  std::uint64_t frames_resumed() const noexcept;  // hashes taken from a checkpoint
  std::uint64_t input_bytes() const noexcept;
  // The SHA-256 of everything written; valid after finish() with hash_input set.
  const Digest& input_digest() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cbuild::oci
