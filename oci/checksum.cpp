#include "oci/checksum.h"

#include <zlib.h>

#include <limits>

#ifdef CBUILD_HAVE_ISAL
#include <isa-l/crc.h>
#endif

namespace cbuild::oci {

std::uint32_t crc32(std::span<const std::byte> data, std::uint32_t seed) noexcept {
#ifdef CBUILD_HAVE_ISAL
  std::uint32_t crc = seed;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t left = data.size();
  while (left > 0) {  // ISA-L takes a 64-bit length, but stay within what the callers' types hold
    std::size_t n = std::min<std::size_t>(left, std::numeric_limits<std::uint32_t>::max());
    crc = crc32_gzip_refl(crc, p, n);
    p += n;
    left -= n;
  }
  return crc;
#else
  uLong crc = seed;
  const auto* p = reinterpret_cast<const Bytef*>(data.data());
  std::size_t left = data.size();
  while (left > 0) {
    auto n = static_cast<uInt>(std::min<std::size_t>(left, std::numeric_limits<uInt>::max()));
    crc = ::crc32(crc, p, n);
    p += n;
    left -= n;
  }
  return static_cast<std::uint32_t>(crc);
#endif
}

}  // namespace cbuild::oci
