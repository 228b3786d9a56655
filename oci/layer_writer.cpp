#include "oci/layer_writer.h"

#include "oci/base/error.h"
#include "oci/sinks.h"

namespace cbuild::oci {

struct LayerWriter::Impl {
  Ingest& ingest;
  LayerWriterOptions options;
  std::string compressor;
  // Framed: TarWriter → FramedCompressSink → ingest. The framed sink hashes its input (the
  // DiffID) on its emitting thread, where it can also resume both hashes from checkpoints.
  std::unique_ptr<FramedCompressSink> framed;
  // Single stream (or uncompressed): TarWriter → HashingSink (DiffID) → compressor → ingest.
  std::unique_ptr<ByteSink> stream;
  std::unique_ptr<HashingSink> uncompressed;
  std::unique_ptr<TarWriter> tar;
  bool done = false;

  Impl(Ingest& in, LayerWriterOptions opt)
      : ingest(in), options(std::move(opt)), compressor(encoder_annotation(options.codec, options.level)) {
    TarWriterOptions t;
    t.clamp_mtime = options.clamp_mtime;
    if (options.codec != Codec::None && options.framed) {
      FramingOptions f;
      f.codec = options.codec;
      f.level = options.level;
      f.threads = options.threads;
      f.min_frame = options.min_frame;
      f.max_frame = std::max(options.max_frame, options.min_frame);
      f.hard_max = std::max<std::size_t>(f.max_frame * 4, 32u << 20);
      f.cache = options.cache;
      f.cache_min = options.cache_min;
      f.hash_input = true;
      f.on_frame = options.on_frame;
      framed = std::make_unique<FramedCompressSink>(ingest, std::move(f));
      t.listener = framed.get();
      tar = std::make_unique<TarWriter>(*framed, t);
      return;
    }
    stream = make_compress_sink(ingest, options.codec, options.level);
    uncompressed = std::make_unique<HashingSink>(stream.get());
    tar = std::make_unique<TarWriter>(*uncompressed, t);
  }
};

LayerWriter::LayerWriter(Ingest& ingest, LayerWriterOptions options)
    : impl_(std::make_unique<Impl>(ingest, std::move(options))) {}
LayerWriter::~LayerWriter() = default;

TarWriter& LayerWriter::tar() { return *impl_->tar; }

LayerResult LayerWriter::finish() {
  Impl& d = *impl_;
  if (d.done) throw Error(ErrorKind::FailedPrecondition, "layer writer: finish called twice");
  d.done = true;
  d.tar->finish();  // finishes the whole chain down to (but not committing) the ingest
  LayerResult r;
  if (d.framed) {
    r.diff_id = d.framed->input_digest();
    r.uncompressed_size = d.framed->input_bytes();
    r.frames = d.framed->frames();
    r.frames_reused = d.framed->frames_reused();
    r.frames_resumed = d.framed->frames_resumed();
  } else {
    r.diff_id = d.uncompressed->digest();
    r.uncompressed_size = d.uncompressed->bytes();
  }
  r.compressor = d.compressor;
  // The ingest counts what it stores; its commit() hashes nothing more (the digest was computed
  // or resumed while the bytes went by).
  const std::int64_t size = d.ingest.bytes_written();
  Digest committed = d.ingest.commit(std::nullopt, size);
  r.descriptor.media_type = std::string(oci_layer_media_type(d.options.codec));
  r.descriptor.digest = committed;
  r.descriptor.size = size;
  if (d.options.codec != Codec::None) r.descriptor.annotations[kCompressorAnnotation] = d.compressor;
  return r;
}

LayerResult write_layer(const std::filesystem::path& dir, Ingester& store, const LayerWriterOptions& options) {
  std::unique_ptr<Ingest> ingest = store.begin_ingest();
  LayerWriter w(*ingest, options);
  w.tar().add_tree(dir);
  return w.finish();
}

}  // namespace cbuild::oci
