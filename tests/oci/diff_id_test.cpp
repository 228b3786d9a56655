// DiffIDs computed from compressed bytes as they stream past, and checked while a layer is read.
#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/compression.h"
#include "oci/diff_id.h"
#include "oci/layout_store.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

std::string compress(const std::string& plain, Codec c) {
  BufferSink out;
  auto z = make_compress_sink(out, c);
  z->write(plain);
  z->finish();
  return out.take();
}

std::string small_tar(const std::string& content) {
  BufferSink out;
  TarWriter w(out);
  TarEntry e;
  e.path = "f";
  e.type = TarType::File;
  e.mode = 0644;
  e.size = static_cast<std::int64_t>(content.size());
  MemorySource src(content);
  w.add(e, &src);
  w.finish();
  return out.take();
}

}  // namespace

TEST_CASE("DiffIdSink: the DiffID of gzip, zstd and plain streams written in odd pieces") {
  const std::string plain = test::text_bytes(5u << 20, 3) + test::random_bytes(3u << 20, 4);
  const Digest want = Digest::of(plain);
  for (Codec c : {Codec::Gzip, Codec::Zstd, Codec::None}) {
    CAPTURE(to_string(c));
    std::string blob = compress(plain, c);
    // A small buffer makes the writer wait for the decoder thread.
    DiffIdSink sink("layer x", 1u << 20);
    for (std::size_t pos = 0, step = 1; pos < blob.size(); pos += step, step = step * 3 % 700001 + 1)
      sink.write(std::string_view(blob).substr(pos, step));
    sink.finish();
    CHECK(sink.diff_id() == want);
  }
}

TEST_CASE("DiffIdSink: corrupt input is DataLoss naming the layer; abandoning it does not hang") {
  std::string blob = compress(test::text_bytes(1u << 20, 5), Codec::Gzip);
  blob.resize(blob.size() / 2);
  DiffIdSink cut("layer sha256:abc");
  cut.write(blob);
  try {
    (void)cut.diff_id();
    FAIL("a truncated gzip stream gave a DiffID");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("layer sha256:abc") != std::string::npos);
  }
  {
    DiffIdSink abandoned("layer y", 1u << 20);
    abandoned.write(compress(test::random_bytes(4u << 20, 6), Codec::Zstd).substr(0, 2u << 20));
  }  // destroyed mid-stream: the decoder thread stops
}

TEST_CASE("TarReader with a diff_id: the last next() refuses content the DiffID does not name") {
  const std::string tar = small_tar("trusted\n");
  const std::string other = small_tar("attacker\n");
  auto read_through = [](const std::string& blob, const Digest& diff_id) {
    TarReader r(std::make_unique<MemorySource>(blob), "layer L", diff_id);
    while (r.next()) {
    }
  };
  for (Codec c : {Codec::Gzip, Codec::None}) {
    std::string blob = compress(tar, c);
    CHECK_NOTHROW(read_through(blob, Digest::of(tar)));
    try {
      read_through(compress(other, c), Digest::of(tar));
      FAIL("content with another DiffID was accepted");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::DataLoss);
      std::string msg = e.what();
      CHECK(msg.find("layer L") != std::string::npos);
      CHECK(msg.find(Digest::of(other).str()) != std::string::npos);
      CHECK(msg.find(Digest::of(tar).str()) != std::string::npos);
    }
  }
}

TEST_CASE("DiffIdRecords: a record outlives nothing but its blob; prune removes orphans") {
  TempDir dir;
  auto store = LayoutStore::open(dir.path() / "store");
  Digest kept = store->put_blob(std::string("kept layer"));
  Digest gone = Digest::of(std::string("never stored"));
  DiffIdRecords records(dir.path() / "store");
  records.record(kept, Digest::of(std::string("a")));
  records.record(gone, Digest::of(std::string("b")));
  CHECK(records.remove_orphans() == 1);
  CHECK(records.find(kept) == Digest::of(std::string("a")));
  CHECK_FALSE(records.find(gone));
  CHECK(records.remove_orphans() == 0);
}
