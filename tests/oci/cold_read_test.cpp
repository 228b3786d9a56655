// ColdAwareReader: the same bytes whether they come from the page cache or from disk with
// O_DIRECT, at any offset and length, short only at end of file; and the CRC-32 helper.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <string>

#include "oci/base/cold_read.h"
#include "oci/base/fs.h"
#include "oci/checksum.h"
#include "oci/internal/blob_file_writer.h"

using namespace cbuild;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(std::size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes `data` with O_DIRECT, which leaves none of it in the page cache.
void write_uncached(const fs::path& p, const std::string& data) {
  UniqueFd fd = open_file(p, O_RDWR | O_CREAT | O_EXCL);
  oci::internal::BlobFileWriter w(fd.get(), p.string());
  w.write(reinterpret_cast<const std::byte*>(data.data()), data.size());
  w.finish();
  REQUIRE(w.direct());
  REQUIRE(::fsync(fd.get()) == 0);
  REQUIRE(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED) == 0);  // the buffered tail too
}

std::string read_at(ColdAwareReader& r, std::uint64_t off, std::size_t n) {
  std::string out(n, '\0');
  out.resize(r.pread(reinterpret_cast<std::byte*>(out.data()), n, off));
  return out;
}

}  // namespace

TEST_CASE("cold reads go to disk with O_DIRECT, cached ones come from the page cache, bytes alike") {
  TempDir t;
  fs::path p = t.path() / "blob";
  std::string data = random_bytes((9u << 20) + 777);
  write_uncached(p, data);
  UniqueFd fd = open_file(p, O_RDONLY);
  {
    ColdAwareReader r(fd.get(), p.string());
    // Unaligned offsets and lengths, one spanning several of the reader's 4 MiB buffers.
    CHECK(read_at(r, 3, 10) == data.substr(3, 10));
    CHECK(read_at(r, 4095, 4098) == data.substr(4095, 4098));
    CHECK(read_at(r, 12345, 6u << 20) == data.substr(12345, 6u << 20));
    CHECK(read_at(r, data.size() - 100, 4096) == data.substr(data.size() - 100));  // short at EOF
    CHECK(read_at(r, data.size(), 10).empty());
    CHECK(read_at(r, data.size() + 8192, 10).empty());
    CHECK(r.direct_bytes() > (6u << 20));
  }
  // Now bring it into the page cache: the same reads are served from there.
  CHECK(read_file(p, 64u << 20) == data);
  ColdAwareReader r(fd.get(), p.string());
  CHECK(read_at(r, 12345, 6u << 20) == data.substr(12345, 6u << 20));
  CHECK(r.cached_bytes() == (6u << 20));
  CHECK(r.direct_bytes() == 0);
}

TEST_CASE("a partly cached range is read from disk, a wholly cached one from the cache") {
  TempDir t;
  fs::path p = t.path() / "blob";
  std::string data = random_bytes(8u << 20);
  write_uncached(p, data);
  UniqueFd fd = open_file(p, O_RDONLY);
  std::string head(1u << 20, '\0');
  REQUIRE(::pread(fd.get(), head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()));  // caches the first MiB
  ColdAwareReader r(fd.get(), p.string());
  CHECK(read_at(r, 0, data.size()) == data);
  CHECK(r.direct_bytes() == data.size());
  CHECK(read_at(r, 100, 5000) == data.substr(100, 5000));
  CHECK(r.cached_bytes() == 5000);
}

TEST_CASE("crc32 is gzip's CRC-32 and composes over pieces") {
  std::string s = "123456789";
  CHECK(oci::crc32(std::as_bytes(std::span(s.data(), s.size()))) == 0xCBF43926u);
  std::string big = random_bytes(1u << 20);
  auto whole = oci::crc32(std::as_bytes(std::span(big.data(), big.size())));
  auto first = oci::crc32(std::as_bytes(std::span(big.data(), 1000)));
  CHECK(oci::crc32(std::as_bytes(std::span(big.data() + 1000, big.size() - 1000)), first) == whole);
  CHECK(oci::crc32({}) == 0u);
}
