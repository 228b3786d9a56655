#include "oci/stream.h"

#include <algorithm>
#include <string>
#include <vector>

#include "oci/base/error.h"

namespace cbuild::oci {

std::string read_all(ByteSource& src, std::size_t max_size) {
  std::string out;
  char buf[65536];
  for (;;) {
    std::size_t n = src.read(buf, sizeof buf);
    if (n == 0) return out;
    if (out.size() + n > max_size)
      throw Error(ErrorKind::ResourceExhausted, "stream larger than " + std::to_string(max_size) + " bytes");
    out.append(buf, n);
  }
}

std::uint64_t copy_stream(ByteSource& src, ByteSink& dst) {
  std::vector<std::byte> buf(1 << 20);
  std::uint64_t total = 0;
  for (;;) {
    std::size_t n = src.read(buf);
    if (n == 0) return total;
    dst.write(std::span<const std::byte>(buf.data(), n));
    total += n;
  }
}

void skip_bytes(ByteSource& src, std::int64_t n) {
  std::vector<std::byte> buf(1 << 20);
  while (n > 0) {
    auto got = src.read(std::span<std::byte>(buf.data(), static_cast<std::size_t>(std::min<std::int64_t>(n, buf.size()))));
    if (got == 0) throw Error(ErrorKind::DataLoss, "the stream ended " + std::to_string(n) + " bytes before the offset to skip to");
    n -= static_cast<std::int64_t>(got);
  }
}

}  // namespace cbuild::oci
