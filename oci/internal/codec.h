// The codec implementations behind compression.h. Each Encoder produces one stream (gzip
// member or zstd frame) per begin()…end(); each decoder is a ByteSource over compressed input.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "oci/stream.h"

namespace cbuild::oci::internal {

class Encoder {
 public:
  virtual ~Encoder() = default;
  // Starts a new member/frame. `size_hint` is the total input size when known (else 0).
  virtual void begin(std::uint64_t size_hint) = 0;
  // Compresses `in`, appending output to `out`; with last=true the member/frame is ended.
  virtual void update(std::span<const std::byte> in, std::string& out, bool last) = 0;
};

// The fixed gzip member header cbuild writes (no name, mtime 0, XFL 0, OS 255).
inline constexpr unsigned char kGzipHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};

std::unique_ptr<Encoder> make_gzip_encoder(int level);  // ISA-L when available, else zlib
std::unique_ptr<Encoder> make_zstd_encoder(int level);
std::string gzip_library_id();  // "isal-2.30.0" or "zlib-1.2.13"
int gzip_effective_level(int level);  // the library's own level for a gzip(1) level

std::unique_ptr<ByteSource> make_gzip_decoder(std::unique_ptr<ByteSource> src, std::string what);
std::unique_ptr<ByteSource> make_zstd_decoder(std::unique_ptr<ByteSource> src, std::string what);
// The zlib implementations, always built so the fallback is tested even where ISA-L is used.
std::unique_ptr<Encoder> make_zlib_gzip_encoder(int level);
std::unique_ptr<ByteSource> make_zlib_gzip_decoder(std::unique_ptr<ByteSource> src, std::string what);

// Ensures `out` has room for `extra` more bytes beyond its size and returns a pointer to them
// (the string is resized; callers shrink it to what was produced).
inline unsigned char* grow_for(std::string& out, std::size_t extra, std::size_t& old_size) {
  old_size = out.size();
  out.resize(old_size + extra);
  return reinterpret_cast<unsigned char*>(out.data()) + old_size;
}

}  // namespace cbuild::oci::internal
