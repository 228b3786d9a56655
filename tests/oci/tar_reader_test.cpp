#include <doctest/doctest.h>

#include <archive.h>
#include <archive_entry.h>

#include <cstdio>
#include <cstring>

#include "oci/base/error.h"
#include "oci/compression.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"
#include "oci/verify.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

std::string make_tar(const std::vector<std::pair<TarEntry, std::string>>& entries) {
  BufferSink out;
  TarWriter w(out);
  for (const auto& [e, data] : entries) {
    MemorySource src(data);
    w.add(e, &src);
  }
  w.finish();
  return out.take();
}

// A tar written by libarchive directly, to produce names our writer refuses ("./", "/x").
std::string raw_tar(const std::vector<std::pair<std::string, unsigned>>& names) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_per_block(a, 0);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* p, const void* d, size_t n) -> la_ssize_t {
        static_cast<std::string*>(p)->append(static_cast<const char*>(d), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& [name, type] : names) {
    archive_entry* e = archive_entry_new();
    archive_entry_copy_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0755);
    archive_entry_set_size(e, 0);
    archive_write_header(a, e);
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

std::vector<TarEntry> entries_of(const std::string& blob) {
  TarReader r(std::make_unique<MemorySource>(blob), "layer sha256:t");
  std::vector<TarEntry> out;
  while (auto e = r.next()) out.push_back(*e);
  return out;
}

std::string compress(const std::string& data, Codec c) {
  BufferSink out;
  auto s = make_compress_sink(out, c, -1);
  s->write(data);
  s->finish();
  return out.take();
}

ErrorKind error_kind(const std::string& blob) {
  try {
    TarReader r(std::make_unique<MemorySource>(blob), "layer sha256:t");
    while (auto e = r.next())
      if (e->type == TarType::File) read_all(r.data(), 1u << 30);
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::Internal;
}

}  // namespace

TEST_CASE("plain, gzip and zstd layers are detected by magic and read the same") {
  std::string big = test::random_bytes(3u << 20, 1);
  std::string tar = make_tar({{TarEntry{.path = "d", .type = TarType::Dir, .mode = 0755}, ""},
                              {TarEntry{.path = "d/big", .size = static_cast<std::int64_t>(big.size())}, big},
                              {TarEntry{.path = "d/small", .size = 5}, "hello"}});
  for (Codec c : {Codec::None, Codec::Gzip, Codec::Zstd}) {
    CAPTURE(to_string(c));
    std::string blob = c == Codec::None ? tar : compress(tar, c);
    TarReader r(std::make_unique<MemorySource>(blob));
    auto e1 = r.next();
    REQUIRE(e1);
    CHECK(e1->path == "d");
    auto e2 = r.next();
    REQUIRE(e2);
    CHECK(e2->path == "d/big");
    // Leave big unread: next() skips it.
    auto e3 = r.next();
    REQUIRE(e3);
    CHECK(e3->path == "d/small");
    CHECK(read_all(r.data()) == "hello");
    CHECK_FALSE(r.next());
    CHECK_FALSE(r.next());
  }
}

TEST_CASE("the reader drains the source so a VerifyingSource checks the digest at the end") {
  std::string tar = make_tar({{TarEntry{.path = "f", .size = 3}, "abc"}});
  std::string gz = compress(tar, Codec::Gzip);
  auto v = std::make_unique<VerifyingSource>(std::make_unique<MemorySource>(gz), Digest::of(gz),
                                             static_cast<std::int64_t>(gz.size()), "layer");
  VerifyingSource* vp = v.get();
  TarReader r(std::move(v));
  while (r.next()) {
  }
  CHECK(vp->verified());
  // A wrong digest fails the read of the layer.
  auto bad = std::make_unique<VerifyingSource>(std::make_unique<MemorySource>(gz), Digest::of("other"),
                                               static_cast<std::int64_t>(gz.size()), "layer sha256:x");
  TarReader r2(std::move(bad));
  try {
    while (r2.next()) {
    }
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("layer sha256:x") != std::string::npos);
  }
}

TEST_CASE("names are normalised, the root entry skipped, '..' kept for the applier") {
  auto got = entries_of(raw_tar({{"./", AE_IFDIR}, {"./a/", AE_IFDIR}, {"/abs//x", AE_IFREG}, {"a/../b", AE_IFREG}}));
  REQUIRE(got.size() == 3);
  CHECK(got[0].path == "a");
  CHECK(got[1].path == "abs/x");
  CHECK(got[2].path == "a/../b");
  // A regular file named "." (hand-made header: our writer and libarchive's refuse to write it).
  std::string h(512, '\0');
  h[0] = '.';
  std::memcpy(&h[100], "0000644", 7);
  std::memcpy(&h[108], "0000000", 7);
  std::memcpy(&h[116], "0000000", 7);
  std::memcpy(&h[124], "00000000000", 11);
  std::memcpy(&h[136], "00000000000", 11);
  h[156] = '0';
  std::memcpy(&h[257], "ustar\0" "00", 8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char ch : h) sum += ch;
  std::snprintf(&h[148], 8, "%06o", sum);
  CHECK(error_kind(h + std::string(1024, '\0')) == ErrorKind::InvalidArgument);
}

TEST_CASE("corrupt and truncated layers give DataLoss, for every codec") {
  std::string data = test::text_bytes(2u << 20, 3);
  std::string tar = make_tar({{TarEntry{.path = "f", .size = static_cast<std::int64_t>(data.size())}, data},
                              {TarEntry{.path = "g", .size = 1}, "x"}});
  for (Codec c : {Codec::None, Codec::Gzip, Codec::Zstd}) {
    CAPTURE(to_string(c));
    std::string blob = c == Codec::None ? tar : compress(tar, c);
    CHECK(error_kind(blob) == ErrorKind::Internal);  // sanity: the intact blob reads fine
    CHECK(error_kind(blob.substr(0, blob.size() / 2)) == ErrorKind::DataLoss);
    if (c != Codec::None) {
      std::string flipped = blob;
      flipped[blob.size() / 3] ^= 0x10;
      CHECK(error_kind(flipped) == ErrorKind::DataLoss);
    }
  }
  CHECK(error_kind(std::string(700, 'x')) == ErrorKind::DataLoss);
}
