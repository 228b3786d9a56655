// The codec implementations behind compression.h. Each Encoder produces one stream (gzip
// member or zstd frame) per begin()…end(); each decoder is a ByteSource over compressed input.
#pragma once

#include <cstdint>
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

// ISA-L when available, else zlib. `sized`: members get gzip_sized_header.h's header, for
// frames: begin() must then be given the exact input size (else the plain header is written
// when it is over kSizedGzipMaxInput), and the whole member must be appended to one `out`,
// since end of member patches the header.
std::unique_ptr<Encoder> make_gzip_encoder(int level, bool sized = false);
std::unique_ptr<Encoder> make_zstd_encoder(int level);
std::string gzip_library_id();  // "isal-2.30.0+l2small+sized" or "zlib-1.2.13+sized"
int gzip_effective_level(int level);  // the library's own level for a gzip(1) level

struct GzipDecoderOptions {
  // Threads inflating members that carry sized headers (parallel_gzip_decoder.cpp); 0 inflates
  // everything on the reading thread.
  unsigned threads = 2;
  bool zlib = false;  // zlib instead of ISA-L (where cbuild has ISA-L; to test the fallback)
};
// Concatenated gzip members: sized members (gzip_sized_header.h) are inflated `threads` at a
// time; from the first member that is not sized (any gzip from elsewhere) to the end, one after
// the other on the reading thread. Same bytes and the same errors either way. With sized
// members, `src` is read by the worker threads (one at a time, in order), and destroying the
// decoder waits for a read in progress to return.
std::unique_ptr<ByteSource> make_gzip_decoder(std::unique_ptr<ByteSource> src, std::string what,
                                              GzipDecoderOptions options = {});
// Inflates everything on the reading thread.
std::unique_ptr<ByteSource> make_serial_gzip_decoder(std::unique_ptr<ByteSource> src, std::string what, bool zlib);
std::unique_ptr<ByteSource> make_zstd_decoder(std::unique_ptr<ByteSource> src, std::string what);
// The zlib encoder, always built so the fallback is tested even where ISA-L is used.
std::unique_ptr<Encoder> make_zlib_gzip_encoder(int level, bool sized = false);

// Inflates one gzip member held whole in memory. Not thread-safe: one per thread.
class GzipMemberInflater {
 public:
  virtual ~GzipMemberInflater() = default;
  // Inflates `in` into `out`, which must be exactly one gzip member of out.size() uncompressed
  // bytes; returns the bytes written. When it is not (corrupt, truncated, a bad checksum, more
  // or less data than out.size(), bytes after the member), `error` is set to the reason and the
  // bytes written before the fault are still counted.
  virtual std::size_t inflate(std::span<const std::uint8_t> in, std::span<std::uint8_t> out, std::string& error) = 0;
};
std::unique_ptr<GzipMemberInflater> make_gzip_member_inflater(bool zlib);

// Ensures `out` has room for `extra` more bytes beyond its size and returns a pointer to them
// (the string is resized; callers shrink it to what was produced).
inline unsigned char* grow_for(std::string& out, std::size_t extra, std::size_t& old_size) {
  old_size = out.size();
  out.resize(old_size + extra);
  return reinterpret_cast<unsigned char*>(out.data()) + old_size;
}

}  // namespace cbuild::oci::internal
