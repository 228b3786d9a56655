// Incremental recompression across builds through the store-backed frame cache.
#include "builder/cache/frame_cache.h"

#include <doctest/doctest.h>

#include <fstream>

#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

// Writes the tree as a layer with a fresh StoreFrameCache (as a new cbuild process would),
// stores the blob under root/blobs/sha256/ and records its frames.
LayerResult write_with_cache(const std::filesystem::path& tree, const std::filesystem::path& root, std::uint64_t* hits) {
  builder::StoreFrameCache cache(root, encoder_id(Codec::Gzip, default_level(Codec::Gzip)));
  test::MemoryStore store;
  std::vector<FrameRecord> frames;
  LayerWriterOptions o{.codec = Codec::Gzip, .cache = &cache};
  o.on_frame = [&](const FrameRecord& f) { frames.push_back(f); };
  LayerResult r = write_layer(tree, store, o);
  make_dirs(root / "blobs" / "sha256");
  write_file_atomic(root / "blobs" / "sha256" / r.descriptor.digest.hex(), store.blobs.at(r.descriptor.digest));
  cache.record_layer(r.descriptor.digest, frames);
  if (hits) *hits = cache.hits();
  return r;
}

}  // namespace

TEST_CASE("StoreFrameCache reuses frames of stored layers, and a damaged blob is only a miss") {
  TempDir tree, root;
  for (int d = 0; d < 4; ++d) {
    std::filesystem::create_directories(tree.path() / ("d" + std::to_string(d)));
    for (int f = 0; f < 20; ++f)
      test::write_text_file(tree.path() / ("d" + std::to_string(d)) / ("f" + std::to_string(f)),
                            test::text_bytes(120000, static_cast<std::uint64_t>(d * 100 + f)));
  }
  std::uint64_t hits = 0;
  LayerResult first = write_with_cache(tree.path(), root.path(), &hits);
  CHECK(hits == 0);
  REQUIRE(first.frames >= 4);

  test::write_text_file(tree.path() / "d2" / "f7", test::text_bytes(300000, 999));
  LayerResult second = write_with_cache(tree.path(), root.path(), &hits);
  CHECK(second.frames_reused > 0);
  CHECK(second.frames_reused < second.frames);
  CHECK(hits == second.frames_reused);

  test::MemoryStore fresh;
  LayerResult plain = write_layer(tree.path(), fresh, LayerWriterOptions{.codec = Codec::Gzip});
  CHECK(plain.descriptor.digest == second.descriptor.digest);

  // Flip a byte in every stored blob: every cached frame now fails its check and is recompressed.
  for (auto& e : std::filesystem::directory_iterator(root.path() / "blobs" / "sha256")) {
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    for (std::streamoff off = 100; off < static_cast<std::streamoff>(std::filesystem::file_size(e.path())); off += 4096) {
      f.seekg(off);
      char c = 0;
      f.read(&c, 1);
      f.seekp(off);
      c = static_cast<char>(c ^ 0x5a);
      f.write(&c, 1);
    }
  }
  LayerResult third = write_with_cache(tree.path(), root.path(), &hits);
  CHECK(third.frames_reused == 0);
  CHECK(third.descriptor.digest == plain.descriptor.digest);
}

TEST_CASE("StoreFrameCache keeps hash checkpoints for the next process; a damaged one is only a miss") {
  TempDir tree, root;
  for (int f = 0; f < 24; ++f)
    test::write_text_file(tree.path() / ("f" + std::to_string(100 + f)), test::text_bytes(150000, static_cast<std::uint64_t>(f)));
  auto store = LayoutStore::open(root.path());
  auto write = [&](std::uint64_t* resumed) {
    builder::StoreFrameCache cache(root.path(), encoder_id(Codec::Gzip, default_level(Codec::Gzip)));
    std::vector<FrameRecord> frames;
    LayerWriterOptions o{.codec = Codec::Gzip, .cache = &cache};
    o.on_frame = [&](const FrameRecord& f) { frames.push_back(f); };
    LayerResult r = write_layer(tree.path(), *store, o);
    cache.record_layer(r.descriptor.digest, frames);
    *resumed = r.frames_resumed;
    return r;
  };
  std::uint64_t resumed = 0;
  LayerResult first = write(&resumed);
  CHECK(resumed == 0);
  REQUIRE(first.frames >= 3);
  LayerResult second = write(&resumed);
  CHECK(resumed == second.frames);
  CHECK(second.descriptor.digest == first.descriptor.digest);
  CHECK(second.diff_id == first.diff_id);

  // Change one state digit of every checkpoint, keeping each line's CRC: all are rejected.
  int damaged = 0;
  for (auto& e : std::filesystem::directory_iterator(root.path() / "cache" / "frames")) {
    std::string text = *read_file_if_exists(e.path());
    for (std::size_t at = text.find("ckpt:"); at != std::string::npos; at = text.find("ckpt:", at + 1)) {
      std::size_t digit = text.find('\t', at) + 1;
      text[digit] = text[digit] == '0' ? '1' : '0';
      ++damaged;
    }
    write_file_atomic(e.path(), text);
  }
  CHECK(damaged == static_cast<int>(first.frames));  // both writes made the same blob: one record file
  LayerResult third = write(&resumed);
  CHECK(resumed == 0);
  CHECK(third.frames_reused == third.frames);
  CHECK(third.descriptor.digest == first.descriptor.digest);
  CHECK(third.diff_id == first.diff_id);
}
