// The same tree gives the same layer digest every time, wherever it lies, whatever the thread
// timing, and — with SOURCE_DATE_EPOCH — whatever the file mtimes past that epoch.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "oci/base/fs.h"
#include "oci/layer_writer.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

void make_tree(const std::filesystem::path& root) {
  make_dirs(root / "usr" / "share" / "doc");
  make_dirs(root / "bin");
  for (int i = 0; i < 30; ++i)
    test::write_text_file(root / "usr" / "share" / "doc" / ("file" + std::to_string(i)),
                          i % 2 ? test::text_bytes(90000 + i * 1000, i) : test::random_bytes(50000, i));
  test::write_text_file(root / "bin" / "tool", test::random_bytes(3u << 20, 77), 0755);
  REQUIRE(::symlink("tool", (root / "bin" / "alias").c_str()) == 0);
  REQUIRE(::link((root / "bin" / "tool").c_str(), (root / "bin" / "hard").c_str()) == 0);
}

void set_mtimes(const std::filesystem::path& root, std::int64_t t) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    timespec ts[2] = {{t, 0}, {t, 0}};
    ::utimensat(AT_FDCWD, e.path().c_str(), ts, AT_SYMLINK_NOFOLLOW);
  }
}

Digest layer_digest(const std::filesystem::path& root, LayerWriterOptions o) {
  test::MemoryStore store;
  return write_layer(root, store, o).descriptor.digest;
}

}  // namespace

TEST_CASE("same tree, same codec and level → same digest, every time and with any thread count") {
  TempDir d1, d2;
  make_tree(d1.path());
  make_tree(d2.path());
  set_mtimes(d1.path(), 1600000000);
  set_mtimes(d2.path(), 1600000000);
  for (Codec c : {Codec::Gzip, Codec::Zstd}) {
    CAPTURE(to_string(c));
    LayerWriterOptions o{.codec = c, .min_frame = 256 * 1024, .max_frame = 1024 * 1024};
    Digest first = layer_digest(d1.path(), o);
    for (int i = 0; i < 3; ++i) CHECK(layer_digest(d1.path(), o) == first);
    CHECK(layer_digest(d2.path(), o) == first);  // another location
    o.threads = 0;
    CHECK(layer_digest(d1.path(), o) == first);
    o.threads = 1;
    CHECK(layer_digest(d1.path(), o) == first);
    o.threads = 2;
    o.level = c == Codec::Gzip ? 9 : 5;
    CHECK(layer_digest(d1.path(), o) != first);  // the level is part of the identity
  }
}

TEST_CASE("SOURCE_DATE_EPOCH: mtimes after the epoch do not change the digest") {
  TempDir d;
  make_tree(d.path());
  set_mtimes(d.path(), 1700000000);
  LayerWriterOptions o{.codec = Codec::Gzip, .clamp_mtime = 1500000000};
  Digest a = layer_digest(d.path(), o);
  set_mtimes(d.path(), 1800000000);
  CHECK(layer_digest(d.path(), o) == a);
  // Without clamping the mtimes show.
  Digest b = layer_digest(d.path(), LayerWriterOptions{.codec = Codec::Gzip});
  set_mtimes(d.path(), 1700000000);
  CHECK(layer_digest(d.path(), LayerWriterOptions{.codec = Codec::Gzip}) != b);
  // An mtime before the epoch is kept.
  set_mtimes(d.path(), 1400000000);
  CHECK(layer_digest(d.path(), o) != a);
}
