// LayerWriter — one streaming pass from tar entries to a stored, compressed layer blob:
//
//   TarWriter → FramedCompressSink (gzip/zstd on 2 workers; DiffID hashed on its emitting thread)
//             → Ingest (store transaction; its digest is the blob's, its byte count the size)
// (a single-stream or uncompressed layer: TarWriter → HashingSink (DiffID) → compressor → Ingest)
//
// No temporary tar, nothing read twice. The result (descriptor + DiffID) exists only after
// finish(), which also commits the ingest with the computed digest. Destroying an unfinished
// LayerWriter abandons the ingest (the store removes its temp file).
//
// The compressed stream is framed (see compression.h): same entries + same codec/level/library
// → same digest, whatever the thread timing. The descriptor carries the annotation
// kCompressorAnnotation = encoder_annotation() (e.g. "isal-2", "zlib-6", "zstd-3") because
// ISA-L and zlib output differ. With a FrameCache, unchanged frames are reused, not recompressed,
// and when the ingest's hash can resume (oci::ResumableHash: the store's can) and the cache holds
// checkpoints, an unchanged prefix of frames is not hashed either (compression.h).
//
// Not thread-safe (internally it runs its own workers). Throws cbuild::Error from the tar
// writer, the codecs or the ingest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include "oci/compression.h"
#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/store.h"
#include "oci/tar_writer.h"

namespace cbuild::oci {

inline constexpr const char* kCompressorAnnotation = "io.cbuild.layer.compressor";

struct LayerWriterOptions {
  Codec codec = Codec::Gzip;
  int level = -1;                                 // -1: default_level(codec)
  std::optional<std::int64_t> clamp_mtime;        // SOURCE_DATE_EPOCH
  unsigned threads = 2;                           // compression workers (0: inline)
  bool framed = true;                             // false: one gzip member / zstd frame
  std::size_t min_frame = 1u << 20;
  std::size_t max_frame = 4u << 20;
  FrameCache* cache = nullptr;                    // reuse of unchanged frames
  std::function<void(const FrameRecord&)> on_frame;
  std::size_t cache_min = 64u << 10;              // FramingOptions::cache_min
};

struct LayerResult {
  Descriptor descriptor;  // media type (OCI), digest, size, compressor annotation
  Digest diff_id;         // sha256 of the uncompressed tar
  std::uint64_t uncompressed_size = 0;
  std::string compressor;  // same as the annotation
  std::uint64_t frames = 0;
  std::uint64_t frames_reused = 0;
  std::uint64_t frames_resumed = 0;  // frames whose hashes came from a checkpoint
};

class LayerWriter {
 public:
  // `ingest` must outlive the writer; finish() commits it.
  LayerWriter(Ingest& ingest, LayerWriterOptions options = {});
  ~LayerWriter();
  LayerWriter(const LayerWriter&) = delete;
  LayerWriter& operator=(const LayerWriter&) = delete;

  // Add entries (or whole trees) here.
  TarWriter& tar();
  // Ends the tar, flushes compression, commits the ingest and returns the layer. Once only.
  LayerResult finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes the tree under `dir` as one layer into a new ingest of `store`.
LayerResult write_layer(const std::filesystem::path& dir, Ingester& store, const LayerWriterOptions& options = {});

}  // namespace cbuild::oci
