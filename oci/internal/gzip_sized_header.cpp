#include "oci/internal/gzip_sized_header.h"

#include <cstring>

namespace cbuild::oci::internal {
namespace {

// Everything but the two sizes.
constexpr unsigned char kFixed[16] = {0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff, 12, 0, 'c', 'b', 8, 0};

void put_le32(char* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint32_t get_le32(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

}  // namespace

static_assert(sizeof kFixed + 8 == kSizedGzipHeaderSize);

void append_sized_gzip_header(std::string& out) {
  out.append(reinterpret_cast<const char*>(kFixed), sizeof kFixed);
  out.append(8, '\0');
}

void set_sized_gzip_header(char* header, GzipMemberSizes sizes) noexcept {
  put_le32(header + sizeof kFixed, sizes.compressed);
  put_le32(header + sizeof kFixed + 4, sizes.uncompressed);
}

std::optional<GzipMemberSizes> parse_sized_gzip_header(std::span<const std::uint8_t> head) noexcept {
  if (head.size() < kSizedGzipHeaderSize || std::memcmp(head.data(), kFixed, sizeof kFixed) != 0) return std::nullopt;
  return GzipMemberSizes{get_le32(head.data() + sizeof kFixed), get_le32(head.data() + sizeof kFixed + 4)};
}

}  // namespace cbuild::oci::internal
