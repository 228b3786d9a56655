#include "oci/compression.h"

#include <zstd.h>

#include <vector>

#include "oci/base/error.h"
#include "oci/internal/codec.h"
#include "oci/internal/prefix_source.h"

namespace cbuild::oci {

std::string_view to_string(Codec c) noexcept {
  switch (c) {
    case Codec::Gzip: return "gzip";
    case Codec::Zstd: return "zstd";
    case Codec::None: break;
  }
  return "none";
}

Codec parse_codec(std::string_view s) {
  if (s == "gzip") return Codec::Gzip;
  if (s == "zstd") return Codec::Zstd;
  if (s == "none" || s == "uncompressed") return Codec::None;
  throw Error(ErrorKind::InvalidArgument, "unknown compression " + quote(s) + " (want gzip, zstd or none)");
}

std::string_view oci_layer_media_type(Codec c) noexcept {
  switch (c) {
    case Codec::Gzip: return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Codec::Zstd: return "application/vnd.oci.image.layer.v1.tar+zstd";
    case Codec::None: break;
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

std::optional<Codec> codec_from_media_type(std::string_view mt) noexcept {
  if (mt == "application/vnd.oci.image.layer.v1.tar+gzip" || mt == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
      mt == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    return Codec::Gzip;
  if (mt == "application/vnd.oci.image.layer.v1.tar+zstd" || mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
    return Codec::Zstd;
  if (mt == "application/vnd.oci.image.layer.v1.tar" || mt == "application/vnd.docker.image.rootfs.diff.tar" ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar")
    return Codec::None;
  return std::nullopt;
}

Codec detect_codec(std::span<const std::byte> h) noexcept {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(h[i]); };
  if (h.size() >= 2 && b(0) == 0x1f && b(1) == 0x8b) return Codec::Gzip;
  if (h.size() >= 4 && b(0) == 0x28 && b(1) == 0xb5 && b(2) == 0x2f && b(3) == 0xfd) return Codec::Zstd;
  return Codec::None;
}

int default_level(Codec c) noexcept {
  switch (c) {
    case Codec::Gzip: return 6;
    case Codec::Zstd: return 3;
    case Codec::None: break;
  }
  return 0;
}

int resolve_level(Codec c, int level) {
  if (level == -1) return default_level(c);
  int lo = 0, hi = 0;
  if (c == Codec::Gzip) lo = 1, hi = 9;
  if (c == Codec::Zstd) lo = 1, hi = ZSTD_maxCLevel();
  if (level < lo || level > hi)
    throw Error(ErrorKind::InvalidArgument, "compression level " + std::to_string(level) + " out of range for " +
                                                std::string(to_string(c)) + " (" + std::to_string(lo) + "-" +
                                                std::to_string(hi) + ")");
  return level;
}

std::string encoder_id(Codec c, int level) {
  level = resolve_level(c, level);
  switch (c) {
    case Codec::Gzip: return internal::gzip_library_id() + "/" + std::to_string(internal::gzip_effective_level(level));
    case Codec::Zstd: return std::string("zstd-") + ZSTD_versionString() + "/" + std::to_string(level);
    case Codec::None: break;
  }
  return "none";
}

std::string encoder_annotation(Codec c, int level) {
  level = resolve_level(c, level);
  switch (c) {
    case Codec::Gzip: {
      std::string lib = internal::gzip_library_id();
      return lib.substr(0, lib.find('-')) + "-" + std::to_string(internal::gzip_effective_level(level));
    }
    case Codec::Zstd: return "zstd-" + std::to_string(level);
    case Codec::None: break;
  }
  return "none";
}

namespace {

// `frame`: one-shot members, which for gzip carry their sizes (internal/gzip_sized_header.h).
std::unique_ptr<internal::Encoder> make_encoder(Codec c, int level, bool frame) {
  level = resolve_level(c, level);
  if (c == Codec::Gzip) return internal::make_gzip_encoder(level, frame);
  if (c == Codec::Zstd) return internal::make_zstd_encoder(level);
  throw Error(ErrorKind::InvalidArgument, "no encoder for uncompressed layers");
}

class EncoderFrames final : public FrameEncoder {
 public:
  explicit EncoderFrames(std::unique_ptr<internal::Encoder> e) : e_(std::move(e)) {}
  void encode(std::span<const std::byte> in, std::string& out) override {
    e_->begin(in.size());
    e_->update(in, out, true);
  }

 private:
  std::unique_ptr<internal::Encoder> e_;
};

class CompressSink final : public ByteSink {
 public:
  CompressSink(ByteSink& out, std::unique_ptr<internal::Encoder> e) : out_(out), e_(std::move(e)) { e_->begin(0); }
  void write(std::span<const std::byte> data) override {
    if (finished_) throw Error(ErrorKind::FailedPrecondition, "write after finish on a compressing sink");
    e_->update(data, buf_, false);
    flush(false);
  }
  void finish() override {
    if (finished_) return;
    finished_ = true;
    e_->update({}, buf_, true);
    flush(true);
    out_.finish();
  }
  using ByteSink::write;

 private:
  void flush(bool all) {
    if (buf_.empty() || (!all && buf_.size() < (1u << 20))) return;
    out_.write(buf_);
    buf_.clear();
  }
  ByteSink& out_;
  std::unique_ptr<internal::Encoder> e_;
  std::string buf_;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<FrameEncoder> make_frame_encoder(Codec c, int level) {
  return std::make_unique<EncoderFrames>(make_encoder(c, level, true));
}

std::unique_ptr<ByteSink> make_compress_sink(ByteSink& out, Codec c, int level) {
  if (c == Codec::None) {
    struct Pass final : ByteSink {
      explicit Pass(ByteSink& o) : o_(o) {}
      void write(std::span<const std::byte> d) override { o_.write(d); }
      void finish() override { o_.finish(); }
      ByteSink& o_;
    };
    return std::make_unique<Pass>(out);
  }
  return std::make_unique<CompressSink>(out, make_encoder(c, level, false));
}

std::unique_ptr<ByteSource> open_decompressed(std::unique_ptr<ByteSource> src, Codec c, std::string what) {
  if (c == Codec::Gzip) return internal::make_gzip_decoder(std::move(src), std::move(what));
  if (c == Codec::Zstd) return internal::make_zstd_decoder(std::move(src), std::move(what));
  return src;
}

std::unique_ptr<ByteSource> open_decompressed(std::unique_ptr<ByteSource> src, std::string what) {
  std::string head(4, '\0');
  std::size_t got = 0;
  while (got < head.size()) {
    std::size_t n = src->read(head.data() + got, head.size() - got);
    if (n == 0) break;
    got += n;
  }
  head.resize(got);
  Codec c = detect_codec(std::as_bytes(std::span(head.data(), head.size())));
  return open_decompressed(std::make_unique<internal::PrefixSource>(std::move(head), std::move(src)), c, std::move(what));
}

}  // namespace cbuild::oci
