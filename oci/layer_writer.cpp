#include "oci/layer_writer.h"

#include "oci/base/error.h"
#include "oci/sinks.h"

namespace cbuild::oci {

struct LayerWriter::Impl {
  Ingest& ingest;
  LayerWriterOptions options;
  std::string compressor;
  // Only counts: the ingest hashes what it stores, and its commit() returns that digest, so a
  // second SHA-256 pass over the compressed bytes here would buy nothing.
  CountingSink compressed;                     // size of the blob → ingest
  std::unique_ptr<FramedCompressSink> framed;  // when framed
  std::unique_ptr<ByteSink> stream;            // when single-stream (or Codec::None)
  HashingSink uncompressed;                    // DiffID → compressor
  std::unique_ptr<TarWriter> tar;
  bool done = false;

  static ByteSink& compressor_sink(Impl& d) {
    if (d.options.codec != Codec::None && d.options.framed) {
      FramingOptions f;
      f.codec = d.options.codec;
      f.level = d.options.level;
      f.threads = d.options.threads;
      f.min_frame = d.options.min_frame;
      f.max_frame = std::max(d.options.max_frame, d.options.min_frame);
      f.hard_max = std::max<std::size_t>(f.max_frame * 4, 32u << 20);
      f.cache = d.options.cache;
      f.on_frame = d.options.on_frame;
      d.framed = std::make_unique<FramedCompressSink>(d.compressed, std::move(f));
      return *d.framed;
    }
    d.stream = make_compress_sink(d.compressed, d.options.codec, d.options.level);
    return *d.stream;
  }

  Impl(Ingest& in, LayerWriterOptions opt)
      : ingest(in),
        options(std::move(opt)),
        compressor(encoder_annotation(options.codec, options.level)),
        compressed(&ingest),
        uncompressed(&compressor_sink(*this)) {
    TarWriterOptions t;
    t.clamp_mtime = options.clamp_mtime;
    t.listener = framed.get();
    tar = std::make_unique<TarWriter>(uncompressed, t);
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
  r.diff_id = d.uncompressed.digest();
  r.uncompressed_size = d.uncompressed.bytes();
  r.compressor = d.compressor;
  if (d.framed) {
    r.frames = d.framed->frames();
    r.frames_reused = d.framed->frames_reused();
  }
  Digest committed = d.ingest.commit(std::nullopt, static_cast<std::int64_t>(d.compressed.bytes()));
  r.descriptor.media_type = std::string(oci_layer_media_type(d.options.codec));
  r.descriptor.digest = committed;
  r.descriptor.size = static_cast<std::int64_t>(d.compressed.bytes());
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
