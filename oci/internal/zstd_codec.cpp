// zstd encoding (one frame per begin()…end(), with content checksum) and decoding of
// concatenated frames.
#include <zstd.h>

#include <vector>

#include "oci/base/error.h"
#include "oci/internal/codec.h"
#include "oci/internal/handles.h"

namespace cbuild::oci::internal {
namespace {

void check(std::size_t rc, const char* what) {
  if (ZSTD_isError(rc))
    throw Error(ErrorKind::Internal, std::string("zstd compression: ") + what + ": " + ZSTD_getErrorName(rc));
}

class ZstdEncoder final : public Encoder {
 public:
  explicit ZstdEncoder(int level) : cctx_(ZSTD_createCCtx()), level_(level) {
    if (!cctx_) throw Error(ErrorKind::ResourceExhausted, "zstd compression: cannot allocate a context");
  }
  void begin(std::uint64_t size_hint) override {
    check(ZSTD_CCtx_reset(cctx_.get(), ZSTD_reset_session_and_parameters), "reset");
    check(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_compressionLevel, level_), "level");
    check(ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_checksumFlag, 1), "checksum");
    // A known size lets zstd pick the same parameters a one-shot ZSTD_compress would.
    if (size_hint) check(ZSTD_CCtx_setPledgedSrcSize(cctx_.get(), size_hint), "pledged size");
  }
  void update(std::span<const std::byte> in, std::string& out, bool last) override {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    for (;;) {
      std::size_t old = 0;
      std::size_t room = ZSTD_compressBound(in.size() - ib.pos) + 1024;
      ZSTD_outBuffer ob{grow_for(out, room, old), room, 0};
      std::size_t rc = ZSTD_compressStream2(cctx_.get(), &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
      out.resize(old + ob.pos);
      check(rc, "compress");
      if (last ? rc == 0 : ib.pos == ib.size) return;
    }
  }

 private:
  ZstdCCtxPtr cctx_;
  int level_;
};

class ZstdDecoder final : public ByteSource {
 public:
  ZstdDecoder(std::unique_ptr<ByteSource> src, std::string what)
      : src_(std::move(src)), what_(std::move(what)), dctx_(ZSTD_createDCtx()), in_(ZSTD_DStreamInSize() * 8) {
    if (!dctx_) throw Error(ErrorKind::ResourceExhausted, what_ + ": cannot allocate a zstd context");
    // Refuse frames that would need a window larger than 128 MiB (memory bound).
    ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_windowLogMax, 27);
  }
  std::size_t read(std::span<std::byte> out) override {
    if (done_ || out.empty()) return 0;
    for (;;) {
      if (ib_.pos == ib_.size && !eof_) {
        std::size_t n = src_->read(in_.data(), in_.size());
        if (n == 0) eof_ = true;
        ib_ = {in_.data(), n, 0};
      }
      if (ib_.pos == ib_.size && eof_ && frame_done_) {
        done_ = true;
        return 0;
      }
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      std::size_t rc = ZSTD_decompressStream(dctx_.get(), &ob, &ib_);
      if (ZSTD_isError(rc))
        throw Error(ErrorKind::DataLoss, what_ + ": corrupt zstd data (" + ZSTD_getErrorName(rc) + ")");
      frame_done_ = rc == 0;
      if (ob.pos > 0) return ob.pos;
      if (!frame_done_ && ib_.pos == ib_.size && eof_) throw Error(ErrorKind::DataLoss, what_ + ": truncated zstd data");
    }
  }
  using ByteSource::read;

 private:
  std::unique_ptr<ByteSource> src_;
  std::string what_;
  ZstdDCtxPtr dctx_;
  std::vector<std::byte> in_;
  ZSTD_inBuffer ib_{nullptr, 0, 0};
  bool eof_ = false, done_ = false;
  bool frame_done_ = true;  // an empty input is an empty stream only if no frame was started
};

}  // namespace

std::unique_ptr<Encoder> make_zstd_encoder(int level) { return std::make_unique<ZstdEncoder>(level); }

std::unique_ptr<ByteSource> make_zstd_decoder(std::unique_ptr<ByteSource> src, std::string what) {
  return std::make_unique<ZstdDecoder>(std::move(src), std::move(what));
}

}  // namespace cbuild::oci::internal
