// The store's ingest file path: buffered for small blobs, O_DIRECT from a writer thread for large
// ones, with the unaligned tail written buffered — the bytes on disk must be exactly the stream.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/ingest.h"
#include "oci/internal/blob_file_writer.h"
#include "oci/layout_store.h"
#include "tests/support/root.h"
#include "tests/support/small_tmpfs.h"

using namespace cbuild;
using namespace cbuild::oci;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Streams `data` into a new ingest of `store` in uneven pieces and commits it.
std::pair<Digest, bool> ingest(LayoutStore& store, const std::string& data) {
  auto in = store.begin_ingest();
  auto* layout = dynamic_cast<LayoutIngest*>(in.get());
  REQUIRE(layout != nullptr);
  std::size_t pos = 0, step = 1;
  while (pos < data.size()) {
    std::size_t n = std::min(data.size() - pos, step);
    in->write(std::string_view(data).substr(pos, n));
    pos += n;
    step = step * 3 + 7;  // 1, 10, 37, … up to several MiB: crosses buffers at odd offsets
    if (step > (3u << 20)) step = 4093;
  }
  Digest d = in->commit(Digest::of(data), static_cast<std::int64_t>(data.size()));
  return {d, layout->direct_io()};
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE("large blobs are written with direct I/O and read back byte for byte") {
  TempDir t;
  auto store = LayoutStore::open(t.path() / "store");
  // A tail of a few bytes, no tail (whole blocks, not whole buffers), and whole buffers.
  for (std::size_t size : {(5u << 20) + 123, (3u << 20) + 8192, 4u << 20}) {
    CAPTURE(size);
    std::string data = random_bytes(size, static_cast<unsigned>(size));
    auto [digest, direct] = ingest(*store, data);
    CHECK(digest == Digest::of(data));
    CHECK(direct);  // the test dir is on ext4, which does O_DIRECT
    CHECK(store->read_blob(digest) == data);
    CHECK(read_file(t.path() / "store" / "blobs" / "sha256" / digest.hex(), 64u << 20) == data);
  }
}

TEST_CASE("small blobs stay buffered") {
  TempDir t;
  auto store = LayoutStore::open(t.path() / "store");
  std::string data = random_bytes((1u << 20) - 1, 7);
  auto [digest, direct] = ingest(*store, data);
  CHECK_FALSE(direct);
  CHECK(store->read_blob(digest) == data);
}

TEST_CASE("the buffered path writes the same bytes as the direct one") {
  TempDir t;
  std::string data = random_bytes((6u << 20) + 4097, 11);
  for (bool allow_direct : {false, true}) {
    CAPTURE(allow_direct);
    fs::path p = t.path() / ("f" + std::to_string(allow_direct));
    UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    REQUIRE(fd);
    {
      internal::BlobFileWriter w(fd.get(), p.string(), allow_direct);
      for (std::size_t pos = 0; pos < data.size(); pos += 300'001)
        w.write(reinterpret_cast<const std::byte*>(data.data() + pos), std::min<std::size_t>(300'001, data.size() - pos));
      w.finish();
      CHECK(w.direct() == allow_direct);
      CHECK(w.bytes() == data.size());
    }
    CHECK(read_file(p, 64u << 20) == data);
  }
}

TEST_CASE("a full disk during a direct write is ResourceExhausted and leaves no temp file") {
  REQUIRE_ROOT();
  test::SmallTmpfs disk("3m");
  const fs::path& mnt = disk.path();
  auto store = LayoutStore::open(mnt);
  std::string data = random_bytes(8u << 20, 3);
  try {
    ingest(*store, data);
    FAIL("no error on a full disk");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::ResourceExhausted);
    CHECK(std::string(e.what()).find("ingest") != std::string::npos);
  }
  CHECK(count_files(mnt / "tmp") == 0);
  CHECK(count_files(mnt / "blobs" / "sha256") == 0);
  // The store still works once there is room.
  std::string small = random_bytes(100'000, 4);
  CHECK(ingest(*store, small).first == Digest::of(small));
}
