// The gzip member header of cbuild's framed gzip layers: the fixed fields of kGzipHeader (no
// name, mtime 0, XFL 0, OS 255) with FLG.FEXTRA set and one extra subfield (RFC 1952 §2.3.1.1),
// ID "cb", LEN 8: the member's compressed size (the whole member: this header, the deflate data
// and the trailer) and its uncompressed size, both 32-bit little-endian.
//
//   1f 8b 08 04 00 00 00 00 00 ff | 0c 00 | 'c' 'b' 08 00 | csize:4 | usize:4     (24 bytes)
//
// Every gzip reader skips extra fields, so such a stream is plain gzip to gzip(1), zlib, Go or
// Python. cbuild's reader uses the sizes to find member boundaries without inflating, and so to
// inflate members on several threads (oci/internal/parallel_gzip_decoder.cpp). The sizes are
// hints, checked against the member when it is inflated: a wrong one is corrupt data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace cbuild::oci::internal {

inline constexpr std::size_t kSizedGzipHeaderSize = 24;
// Members of more input than this get the plain 10-byte header: their sizes might not fit.
inline constexpr std::uint64_t kSizedGzipMaxInput = 1u << 30;

struct GzipMemberSizes {
  std::uint32_t compressed = 0;
  std::uint32_t uncompressed = 0;
};

// Appends the header with both sizes 0 (set_sized_gzip_header() fills them in when known).
void append_sized_gzip_header(std::string& out);
// Writes `sizes` into a header appended by append_sized_gzip_header at `header`.
void set_sized_gzip_header(char* header, GzipMemberSizes sizes) noexcept;
// The sizes if `head` starts with exactly this header layout; nullopt for any other bytes
// (other gzip headers, other extra fields, fewer than kSizedGzipHeaderSize bytes).
std::optional<GzipMemberSizes> parse_sized_gzip_header(std::span<const std::uint8_t> head) noexcept;

}  // namespace cbuild::oci::internal
