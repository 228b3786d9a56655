// Owners for the C library handles of the layer pipeline (libarchive, zstd, zlib, ISA-L state):
// std::unique_ptr with deleters, so every early exit and every throw releases them.
#pragma once

#include <archive.h>
#include <zlib.h>
#include <zstd.h>

#include <memory>

namespace cbuild::oci::internal {

struct ArchiveWriteFree {
  void operator()(archive* a) const noexcept { archive_write_free(a); }
};
struct ArchiveReadFree {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};
struct ZstdCCtxFree {
  void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};
struct ZstdDCtxFree {
  void operator()(ZSTD_DCtx* c) const noexcept { ZSTD_freeDCtx(c); }
};

using ArchiveWritePtr = std::unique_ptr<archive, ArchiveWriteFree>;
using ArchiveReadPtr = std::unique_ptr<archive, ArchiveReadFree>;
using ZstdCCtxPtr = std::unique_ptr<ZSTD_CCtx, ZstdCCtxFree>;
using ZstdDCtxPtr = std::unique_ptr<ZSTD_DCtx, ZstdDCtxFree>;

// A z_stream that is initialised by its owner and ended here (deflateEnd or inflateEnd).
class ZStream {
 public:
  enum class Kind { Deflate, Inflate };
  explicit ZStream(Kind kind) noexcept : kind_(kind) {}
  ~ZStream() {
    if (!live_) return;
    if (kind_ == Kind::Deflate) deflateEnd(&z_);
    else inflateEnd(&z_);
  }
  ZStream(const ZStream&) = delete;
  ZStream& operator=(const ZStream&) = delete;
  z_stream* get() noexcept { return &z_; }
  void set_live() noexcept { live_ = true; }

 private:
  Kind kind_;
  bool live_ = false;
  z_stream z_{};
};

}  // namespace cbuild::oci::internal
