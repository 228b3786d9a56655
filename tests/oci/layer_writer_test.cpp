#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

// A tree of `files` files mixing text and random data, ~`each` bytes apiece.
void make_tree(const std::filesystem::path& root, int files, std::size_t each, std::uint64_t seed = 1) {
  for (int i = 0; i < files; ++i) {
    auto dir = root / ("d" + std::to_string(i % 7));
    make_dirs(dir);
    std::size_t n = each / 2 + (static_cast<std::size_t>(i) * 7919) % each;
    std::string data = i % 3 == 0 ? test::random_bytes(n, seed + i) : test::text_bytes(n, seed + i);
    test::write_text_file(dir / ("f" + std::to_string(i)), data);
  }
}

}  // namespace

TEST_CASE("write_layer: descriptor, DiffID and blob agree, for gzip, zstd and none") {
  TempDir d;
  make_tree(d.path(), 40, 200000);
  for (Codec c : {Codec::Gzip, Codec::Zstd, Codec::None}) {
    CAPTURE(to_string(c));
    test::MemoryStore store;
    LayerResult r = write_layer(d.path(), store, LayerWriterOptions{.codec = c});
    REQUIRE(store.blobs.count(r.descriptor.digest) == 1);
    const std::string& blob = store.blobs[r.descriptor.digest];
    CHECK(r.descriptor.size == static_cast<std::int64_t>(blob.size()));
    CHECK(r.descriptor.digest == Digest::of(blob));
    CHECK(r.descriptor.media_type == oci_layer_media_type(c));
    std::string tar = test::decompress_all(blob);
    CHECK(r.diff_id == Digest::of(tar));
    CHECK(r.uncompressed_size == tar.size());
    if (c == Codec::None) {
      CHECK(r.diff_id == r.descriptor.digest);
      CHECK(r.descriptor.annotations.empty());
    } else {
      CHECK(r.descriptor.annotations.at(kCompressorAnnotation) == encoder_annotation(c, -1));
      CHECK(r.compressor == encoder_annotation(c, -1));
      CHECK(r.frames >= 2);
      CHECK(blob.size() < tar.size());
    }
    // The blob reads back as the tree.
    TarReader reader(std::make_unique<MemorySource>(blob));
    int files = 0;
    while (auto e = reader.next()) files += e->type == TarType::File;
    CHECK(files == 40);
  }
}

TEST_CASE("framed layers stay within 2% of a single-stream layer at the same level") {
  TempDir d;
  make_tree(d.path(), 60, 300000, 7);
  for (Codec c : {Codec::Gzip, Codec::Zstd}) {
    CAPTURE(to_string(c));
    test::MemoryStore s1, s2;
    LayerResult framed = write_layer(d.path(), s1, LayerWriterOptions{.codec = c});
    LayerResult single = write_layer(d.path(), s2, LayerWriterOptions{.codec = c, .framed = false});
    CHECK(framed.diff_id == single.diff_id);
    CHECK(single.frames == 0);
    double ratio = static_cast<double>(framed.descriptor.size) / static_cast<double>(single.descriptor.size);
    MESSAGE(to_string(c) << ": framed " << framed.descriptor.size << " (" << framed.frames << " frames) vs single "
                         << single.descriptor.size << " → " << ratio);
    CHECK(ratio < 1.02);
  }
}

TEST_CASE("a frame cache: a changed file recompresses only nearby frames; the digest equals a fresh write") {
  TempDir d;
  make_tree(d.path(), 80, 150000, 3);
  test::MemoryFrameCache cache;
  test::MemoryStore store;
  LayerWriterOptions o{.codec = Codec::Zstd, .cache = &cache};
  LayerResult first = write_layer(d.path(), store, o);
  CHECK(first.frames_reused == 0);
  CHECK(first.frames >= 6);
  LayerResult again = write_layer(d.path(), store, o);
  CHECK(again.frames_reused == again.frames);
  CHECK(again.descriptor.digest == first.descriptor.digest);
  // Grow one file in the middle of the tree.
  test::write_text_file(d.path() / "d3" / "f38", test::text_bytes(400000, 1234));
  std::uint64_t reported_reused = 0;
  o.on_frame = [&](const FrameRecord& f) { reported_reused += f.reused; };
  LayerResult changed = write_layer(d.path(), store, o);
  CHECK(changed.frames_reused == reported_reused);
  CHECK(changed.frames_reused + 3 >= changed.frames);
  CHECK(changed.frames_reused < changed.frames);
  test::MemoryStore fresh_store;
  LayerResult fresh = write_layer(d.path(), fresh_store, LayerWriterOptions{.codec = Codec::Zstd});
  CHECK(fresh.descriptor.digest == changed.descriptor.digest);
  CHECK(fresh.diff_id == changed.diff_id);
}

TEST_CASE("hash checkpoints: a rebuild hashes only the frames from the changed file on; digests equal a fresh write") {
  TempDir d, root;
  make_tree(d.path(), 60, 150000, 5);
  auto store = LayoutStore::open(root.path());
  test::MemoryFrameCache cache;
  std::vector<FrameRecord> records;
  LayerWriterOptions o{.codec = Codec::Zstd, .cache = &cache};
  o.on_frame = [&](const FrameRecord& f) { records.push_back(f); };
  auto write = [&] {
    records.clear();
    LayerResult r = write_layer(d.path(), *store, o);
    for (const auto& f : records) cache.record(f);
    return r;
  };
  auto fresh = [&] {  // no cache and a downstream that cannot resume: every byte hashed
    test::MemoryStore mem;
    return write_layer(d.path(), mem, LayerWriterOptions{.codec = Codec::Zstd});
  };
  LayerResult first = write();
  CHECK(first.frames_resumed == 0);
  REQUIRE(first.frames >= 6);
  for (const auto& f : records) {
    CHECK(f.checkpoint);
    CHECK_FALSE(f.resumed);
    CHECK(f.checkpoint->uncompressed.bytes == f.uncompressed_offset + f.uncompressed_size);
    CHECK(f.checkpoint->compressed.bytes == f.compressed_offset + f.compressed_size);
  }
  LayerResult again = write();
  CHECK(again.frames_resumed == again.frames);
  CHECK(again.descriptor.digest == first.descriptor.digest);
  CHECK(again.diff_id == first.diff_id);

  // Files are written in path order: change the last one ("d6/f6" sorts after "d6/f55").
  test::write_text_file(d.path() / "d6" / "f6", test::text_bytes(200000, 77));
  LayerResult changed = write();
  CHECK(changed.frames_resumed > 0);
  CHECK(changed.frames_resumed < changed.frames);
  for (std::size_t i = 0; i < records.size(); ++i)  // resumed frames are a prefix
    CHECK(records[i].resumed == (i < changed.frames_resumed));
  LayerResult want = fresh();
  CHECK(changed.descriptor.digest == want.descriptor.digest);
  CHECK(changed.diff_id == want.diff_id);
  CHECK(changed.descriptor.size == want.descriptor.size);
  // The store reads the blob back and verifies its digest over the bytes on disk.
  CHECK(read_all(*store->open(changed.descriptor.digest)).size() == static_cast<std::size_t>(want.descriptor.size));

  // A checkpoint that claims another position is not used, whatever its chain.
  test::MemoryFrameCache odd;
  LayerWriterOptions o2{.codec = Codec::Zstd, .cache = &odd};
  std::vector<FrameRecord> recs;
  o2.on_frame = [&](const FrameRecord& f) { recs.push_back(f); };
  write_layer(d.path(), *store, o2);
  REQUIRE(recs.size() >= 2);
  HashCheckpoint shifted = *recs[0].checkpoint;
  Sha256 h;
  h.update("x");
  shifted.uncompressed = h.state();  // 1 byte hashed: not where frame 0 ends
  odd.set_checkpoint(recs[0].chain, shifted);
  recs.clear();
  LayerResult skipped = write_layer(d.path(), *store, o2);
  CHECK(skipped.frames_resumed == 0);
  CHECK(skipped.diff_id == want.diff_id);
}

TEST_CASE("LayerWriter over explicit entries; nothing is committed when it is abandoned") {
  test::MemoryStore store;
  {
    auto ingest = store.begin_ingest();
    LayerWriter w(*ingest);
    std::string data = "payload";
    MemorySource src(data);
    w.tar().add(TarEntry{.path = "etc", .type = TarType::Dir, .mode = 0755});
    w.tar().add(TarEntry{.path = "etc/x", .size = 7}, &src);
    LayerResult r = w.finish();
    CHECK(store.blobs.size() == 1);
    CHECK_THROWS_AS(w.finish(), Error);
    TarReader reader(std::make_unique<MemorySource>(store.blobs[r.descriptor.digest]));
    REQUIRE(reader.next());
    REQUIRE(reader.next());
    CHECK(read_all(reader.data()) == "payload");
  }
  {
    auto ingest = store.begin_ingest();
    LayerWriter w(*ingest);
    w.tar().add(TarEntry{.path = "half"});
    // destroyed without finish(): workers stop, no blob committed
  }
  CHECK(store.blobs.size() == 1);
  CHECK_THROWS_AS(write_layer("/nonexistent-cbuild-dir", store), Error);
  CHECK_THROWS_AS(LayerWriter(*store.begin_ingest(), LayerWriterOptions{.codec = Codec::Zstd, .level = 99}), Error);
}
