#include <doctest/doctest.h>

#include <cstring>

#include <cstdio>
#include <thread>

#include "oci/base/error.h"
#include "oci/compression.h"
#include "oci/internal/codec.h"
#include "oci/sinks.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

std::string compress_stream(const std::string& data, Codec c, int level = -1) {
  BufferSink out;
  auto sink = make_compress_sink(out, c, level);
  // Uneven pieces exercise the streaming path.
  std::size_t pos = 0, step = 1;
  while (pos < data.size()) {
    std::size_t n = std::min(step, data.size() - pos);
    sink->write(std::string_view(data).substr(pos, n));
    pos += n;
    step = step * 3 + 7;
  }
  sink->finish();
  CHECK(out.finished());
  return out.take();
}

ErrorKind decompress_error(const std::string& blob) {
  try {
    test::decompress_all(blob);
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::Internal;
}

const Codec kCodecs[] = {Codec::Gzip, Codec::Zstd};

}  // namespace

TEST_CASE("magic detection and media types") {
  auto bytes = [](std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); };
  CHECK(detect_codec(bytes("\x1f\x8b\x08\x00")) == Codec::Gzip);
  CHECK(detect_codec(bytes("\x28\xb5\x2f\xfd")) == Codec::Zstd);
  CHECK(detect_codec(bytes("\x28\xb5\x2f")) == Codec::None);
  CHECK(detect_codec(bytes("ustar")) == Codec::None);
  CHECK(detect_codec(bytes("")) == Codec::None);
  CHECK(oci_layer_media_type(Codec::Zstd) == "application/vnd.oci.image.layer.v1.tar+zstd");
  CHECK(codec_from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip") == Codec::Gzip);
  CHECK_FALSE(codec_from_media_type("application/vnd.oci.image.config.v1+json"));
  CHECK(parse_codec("zstd") == Codec::Zstd);
  CHECK_THROWS_AS(parse_codec("brotli"), Error);
  CHECK_THROWS_AS(resolve_level(Codec::Gzip, 10), Error);
  CHECK(resolve_level(Codec::Zstd, -1) == 3);
}

TEST_CASE("encoder ids name library, version and effective level") {
  std::string g = encoder_id(Codec::Gzip, -1);
  std::string z = encoder_id(Codec::Zstd, 3);
#ifdef CBUILD_HAVE_ISAL
  CHECK(g.rfind("isal-", 0) == 0);
  CHECK(g.substr(g.size() - 2) == "/2");
  CHECK(encoder_annotation(Codec::Gzip, 6) == "isal-2");
  CHECK(encoder_annotation(Codec::Gzip, 9) == "isal-3");
#else
  CHECK(g.rfind("zlib-", 0) == 0);
  CHECK(encoder_annotation(Codec::Gzip, 6) == "zlib-6");
#endif
  CHECK(z.rfind("zstd-1.", 0) == 0);
  CHECK(z.substr(z.size() - 2) == "/3");
  CHECK(encoder_id(Codec::Zstd, 4) != z);
  CHECK(encoder_annotation(Codec::Zstd, 3) == "zstd-3");
}

TEST_CASE("streaming compression round-trips for every codec and size") {
  for (Codec c : kCodecs) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{65537}, std::size_t{3u << 20}}) {
      CAPTURE(to_string(c));
      CAPTURE(n);
      std::string data = test::text_bytes(n / 2, n) + test::random_bytes(n - n / 2, n);
      std::string blob = compress_stream(data, c);
      CHECK(detect_codec(std::as_bytes(std::span(blob.data(), blob.size()))) == c);
      CHECK(test::decompress_all(blob) == data);
    }
  }
}

TEST_CASE("gzip members have the fixed header and are read by gzip(1); zstd frames by zstd(1)") {
  std::string data = test::text_bytes(500000, 9);
  std::string gz = compress_stream(data, Codec::Gzip);
  REQUIRE(gz.size() > 18);
  CHECK(gz.substr(0, 10) == std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10));
  CHECK(test::run_filter("gzip -dc", gz) == data);
  std::string zs = compress_stream(data, Codec::Zstd);
  CHECK(test::run_filter("zstd -dc", zs) == data);
  // And we read what the tools write (multi-member gzip too).
  std::string two = test::run_filter("gzip -6c", data) + test::run_filter("gzip -1c", "tail");
  CHECK(test::decompress_all(two) == data + "tail");
  CHECK(test::decompress_all(test::run_filter("zstd -3 -c", data)) == data);
}

TEST_CASE("concatenated frames decode as one stream; frame encoding is deterministic") {
  for (Codec c : kCodecs) {
    CAPTURE(to_string(c));
    auto enc = make_frame_encoder(c, -1);
    std::string a = test::text_bytes(200000, 1), b = test::random_bytes(100000, 2), e;
    std::string blob, again;
    enc->encode(std::as_bytes(std::span(a.data(), a.size())), blob);
    enc->encode(std::as_bytes(std::span(e.data(), e.size())), blob);
    enc->encode(std::as_bytes(std::span(b.data(), b.size())), blob);
    CHECK(test::decompress_all(blob) == a + b);
    auto enc2 = make_frame_encoder(c, -1);
    enc2->encode(std::as_bytes(std::span(a.data(), a.size())), again);
    CHECK(blob.substr(0, again.size()) == again);
  }
}

TEST_CASE("the zlib fallback and the default gzip codec read each other's output") {
  std::string data = test::text_bytes(700000, 5) + test::random_bytes(70000, 5);
  auto z = internal::make_zlib_gzip_encoder(6);
  std::string blob;
  z->begin(0);
  z->update(std::as_bytes(std::span(data.data(), data.size())), blob, true);
  CHECK(test::decompress_all(blob) == data);  // default decoder (ISA-L when built with it)
  std::string ours = compress_stream(data, Codec::Gzip);
  std::string both = ours + blob;  // MemorySource borrows: keep the bytes alive
  auto dec = internal::make_serial_gzip_decoder(std::make_unique<MemorySource>(both), "fallback", true);
  CHECK(read_all(*dec, 1u << 30) == data + data);
}

TEST_CASE("corrupt and truncated compressed data give DataLoss") {
  std::string data = test::text_bytes(400000, 6);
  for (Codec c : kCodecs) {
    CAPTURE(to_string(c));
    std::string blob = compress_stream(data, c);
    std::string flipped = blob;
    flipped[blob.size() / 2] ^= 0x40;
    CHECK(decompress_error(flipped) == ErrorKind::DataLoss);
    std::string trailer = blob;
    trailer[blob.size() - 2] ^= 0x01;  // gzip ISIZE / zstd checksum
    CHECK(decompress_error(trailer) == ErrorKind::DataLoss);
    CHECK(decompress_error(blob.substr(0, blob.size() - 5)) == ErrorKind::DataLoss);
    CHECK(decompress_error(blob.substr(0, blob.size() / 3)) == ErrorKind::DataLoss);
    CHECK(decompress_error(blob + "garbage!") == ErrorKind::DataLoss);
  }
  try {
    test::decompress_all(std::string("\x1f\x8b\x08\x00\x00\x00", 6));
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("test blob") != std::string::npos);
  }
}

namespace {
struct FramedRun {
  std::string blob;
  std::vector<FrameRecord> frames;
};
// Feeds `data` in 64 KiB "entries", offering a boundary after each with a fingerprint of its
// content (as the tar writer's fingerprints depend on the entry, not on its position).
// Small frames (256 KiB–1 MiB, 4 MiB without a boundary), recording each frame into `r`.
FramingOptions small_frames(Codec c, unsigned threads, FrameCache* cache, FramedRun& r) {
  FramingOptions o;
  o.codec = c;
  o.threads = threads;
  o.min_frame = 256 * 1024;
  o.max_frame = 1024 * 1024;
  o.hard_max = 4 * 1024 * 1024;
  o.cache = cache;
  o.cache_min = 0;  // the last, small frame too
  o.on_frame = [&r](const FrameRecord& f) { r.frames.push_back(f); };
  return o;
}

FramedRun run_framed(const std::string& data, Codec c, unsigned threads, FrameCache* cache = nullptr,
                     std::size_t piece = 65536) {
  FramedRun r;
  BufferSink out;
  FramedCompressSink s(out, small_frames(c, threads, cache, r));
  for (std::size_t pos = 0; pos < data.size(); pos += piece) {
    std::string_view p = std::string_view(data).substr(pos, piece);
    s.write(p);
    s.boundary(std::hash<std::string_view>{}(p) * 0x9e3779b97f4a7c15ull);
  }
  s.finish();
  CHECK(s.frames() == r.frames.size());
  r.blob = out.take();
  return r;
}
}  // namespace

TEST_CASE("framed compression: same bytes whatever the thread count, frames cut at boundaries") {
  std::string data = test::text_bytes(5u << 20, 11) + test::random_bytes(2u << 20, 11);
  for (Codec c : kCodecs) {
    CAPTURE(to_string(c));
    FramedRun inline_run = run_framed(data, c, 0);
    FramedRun one = run_framed(data, c, 1);
    FramedRun two = run_framed(data, c, 2);
    CHECK(inline_run.blob == one.blob);
    CHECK(inline_run.blob == two.blob);
    CHECK(test::decompress_all(two.blob) == data);
    REQUIRE(two.frames.size() >= 5);
    std::uint64_t off = 0, coff = 0;
    for (std::size_t i = 0; i < two.frames.size(); ++i) {
      const FrameRecord& f = two.frames[i];
      CHECK(f.index == i);
      CHECK(f.uncompressed_offset == off);
      CHECK(f.compressed_offset == coff);
      CHECK(f.uncompressed_offset % 65536 == 0);  // only at offered boundaries
      if (i + 1 < two.frames.size()) {
        CHECK(f.uncompressed_size >= 256 * 1024);
        CHECK(f.uncompressed_size <= 1024 * 1024 + 65536);
      }
      CHECK(f.key == frame_cache_key(encoder_id(c, default_level(c)), Digest::of(std::string_view(data).substr(off, f.uncompressed_size))));
      off += f.uncompressed_size;
      coff += f.compressed_size;
    }
    CHECK(off == data.size());
    CHECK(coff == two.blob.size());
  }
}

TEST_CASE("framed compression: an insertion changes only nearby frames, and the cache reuses the rest") {
  std::string data = test::text_bytes(6u << 20, 12);
  test::MemoryFrameCache cache;
  FramedRun first = run_framed(data, Codec::Gzip, 2, &cache);
  CHECK(cache.hits == 0);
  CHECK(cache.puts == static_cast<int>(first.frames.size()));
  // Insert one 64 KiB piece in the middle: later content-defined cuts stay where they were.
  std::string changed = data.substr(0, 3u << 20) + test::random_bytes(65536, 99) + data.substr(3u << 20);
  FramedRun second = run_framed(changed, Codec::Gzip, 2, &cache);
  int reused = 0;
  for (const auto& f : second.frames) reused += f.reused;
  CHECK(reused == cache.hits);
  CHECK(reused >= static_cast<int>(second.frames.size()) - 3);
  // Reused frames give the very bytes a fresh compression would.
  FramedRun fresh = run_framed(changed, Codec::Gzip, 2);
  CHECK(fresh.blob == second.blob);
  CHECK(test::decompress_all(second.blob) == changed);
}

TEST_CASE("framed compression: input without boundaries is cut at hard_max; empty input is one valid frame") {
  BufferSink out;
  FramingOptions o;
  o.codec = Codec::Zstd;
  o.min_frame = 1024;
  o.max_frame = 4096;
  o.hard_max = 8192;
  std::vector<FrameRecord> frames;
  o.on_frame = [&](const FrameRecord& f) { frames.push_back(f); };
  FramedCompressSink s(out, o);
  std::string data = test::random_bytes(20000, 1);
  s.write(data);
  s.finish();
  CHECK(frames.size() == 3);
  CHECK(test::decompress_all(out.str()) == data);

  BufferSink empty;
  FramedCompressSink e(empty, FramingOptions{});
  e.finish();
  CHECK_FALSE(empty.str().empty());
  CHECK(test::decompress_all(empty.str()).empty());
  CHECK_THROWS_AS(e.write(std::string_view("x")), Error);
}

TEST_CASE("framed compression: a failing downstream sink surfaces as the sink's error") {
  struct Failing : ByteSink {
    void write(std::span<const std::byte>) override { throw Error(ErrorKind::ResourceExhausted, "write \"blob\": no space"); }
  } bad;
  FramingOptions o;
  o.min_frame = 1024;
  o.max_frame = 2048;
  o.hard_max = 4096;
  FramedCompressSink s(bad, o);
  std::string data = test::random_bytes(1u << 20, 2);
  try {
    s.write(data);
    s.finish();
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::ResourceExhausted);
  }
}

TEST_CASE("known content: frames keyed by reference, whatever the chunking; same bytes out; reused from the cache") {
  // A "header", 3 MiB of one file's bytes announced as known content, a "trailer".
  std::string header = test::text_bytes(700, 1), file = test::text_bytes(3u << 20, 2), trailer = test::text_bytes(900, 3);
  Digest content = Digest::of(file);
  auto run = [&](std::size_t piece, bool announce, FrameCache* cache) {
    FramedRun r;
    BufferSink out;
    FramedCompressSink s(out, small_frames(Codec::Gzip, 2, cache, r));
    s.write(header);
    for (std::size_t pos = 0; pos < file.size(); pos += piece) {
      std::size_t n = std::min(piece, file.size() - pos);
      if (announce) s.known_content(content, pos, n);
      s.write(std::string_view(file).substr(pos, n));
      if ((pos + n) % (512 * 1024) == 0) s.boundary((pos + n) * 0x9e3779b97f4a7c15ull);
    }
    s.write(trailer);
    s.finish();
    r.blob = out.take();
    return r;
  };
  FramedRun plain = run(65536, false, nullptr);
  FramedRun small = run(65536, true, nullptr);
  FramedRun large = run(512 * 1024, true, nullptr);
  CHECK(small.blob == plain.blob);
  CHECK(large.blob == plain.blob);
  REQUIRE(small.frames.size() == large.frames.size());
  REQUIRE(small.frames.size() >= 3);
  std::string id = encoder_id(Codec::Gzip, default_level(Codec::Gzip));
  for (std::size_t i = 0; i < small.frames.size(); ++i) {
    CAPTURE(i);
    CHECK(small.frames[i].key == large.frames[i].key);  // adjacent runs merge: chunking does not show
    bool holds_file = small.frames[i].uncompressed_offset < header.size() + file.size();
    CHECK((small.frames[i].key.rfind(id + " refs:", 0) == 0) == holds_file);
    CHECK((small.frames[i].key != plain.frames[i].key) == holds_file);  // the trailer-only frame: by its bytes
  }
  // Another content digest for the same bytes names other frames.
  Digest other = Digest::of(std::string("other"));
  {
    BufferSink out;
    FramingOptions o;
    o.threads = 0;
    std::vector<std::string> keys;
    o.on_frame = [&](const FrameRecord& f) { keys.push_back(f.key); };
    FramedCompressSink s(out, o);
    s.known_content(other, 0, 10);
    s.write(std::string_view(file).substr(0, 10));
    s.finish();
    FramedCompressSink s2(out, FramingOptions{.threads = 0, .on_frame = [&](const FrameRecord& f) { keys.push_back(f.key); }});
    s2.known_content(content, 0, 10);
    s2.write(std::string_view(file).substr(0, 10));
    s2.finish();
    REQUIRE(keys.size() == 2);
    CHECK(keys[0] != keys[1]);
  }
  // The other bytes are named by their hash: however they were written, and changed by any byte.
  {
    auto keys_of = [&](const std::string& head, std::size_t piece) {
      std::vector<std::string> keys;
      BufferSink out;
      FramedCompressSink s(out, FramingOptions{.threads = 0, .on_frame = [&](const FrameRecord& f) { keys.push_back(f.key); }});
      for (std::size_t pos = 0; pos < head.size(); pos += piece) s.write(std::string_view(head).substr(pos, piece));
      s.known_content(content, 0, 4096);
      s.write(std::string_view(file).substr(0, 4096));
      s.write(trailer);
      s.finish();
      REQUIRE(keys.size() == 1);
      return keys[0];
    };
    std::string flipped = header;
    flipped[350] ^= 1;
    CHECK(keys_of(header, 1) == keys_of(header, header.size()));
    CHECK(keys_of(flipped, 7) != keys_of(header, 7));
  }
  test::MemoryFrameCache cache;
  run(65536, true, &cache);
  FramedRun reused = run(65536, true, &cache);
  CHECK(cache.hits == static_cast<int>(reused.frames.size()));
  CHECK(reused.blob == plain.blob);
}

TEST_CASE("framed compression: frames under cache_min are compressed without asking the cache") {
  std::string data = test::text_bytes(3u << 20, 5);
  for (std::size_t cache_min : {std::size_t{0}, std::size_t{64} << 10, std::size_t{8} << 20}) {
    CAPTURE(cache_min);
    test::MemoryFrameCache cache;
    FramedRun r;
    BufferSink out;
    FramingOptions o = small_frames(Codec::Zstd, 2, &cache, r);
    o.cache_min = cache_min;
    FramedCompressSink s(out, o);
    for (std::size_t pos = 0; pos < data.size(); pos += 65536) {
      std::string_view p = std::string_view(data).substr(pos, 65536);
      s.write(p);
      s.boundary(std::hash<std::string_view>{}(p) * 0x9e3779b97f4a7c15ull);
    }
    s.write(std::string_view("tail"));  // a last frame of 4 bytes
    s.finish();
    std::size_t big = 0;
    for (const auto& f : r.frames) big += f.uncompressed_size >= cache_min;
    REQUIRE(r.frames.size() >= 3);
    CHECK(cache.puts == static_cast<int>(big));  // one put per frame looked up (all missed)
    CHECK(test::decompress_all(out.str()) == data + "tail");
  }
}

TEST_CASE("framed compression: bytes filled in place through write_room give the same stream as copied ones") {
  std::string data = test::text_bytes(9u << 20, 9);
  auto run = [&](bool in_place) {
    FramedRun r;
    BufferSink out;
    FramedCompressSink s(out, small_frames(Codec::Gzip, 2, nullptr, r));
    std::size_t pos = 0, hit_hard_max = 0;
    while (pos < data.size()) {
      std::size_t want = std::min<std::size_t>(300000, data.size() - pos);
      if (in_place) {
        std::span<std::byte> room = s.write_room(want);
        REQUIRE_FALSE(room.empty());
        hit_hard_max += room.size() < want;  // the room stops where the frame must be cut
        want = room.size();
        std::memcpy(room.data(), data.data() + pos, want);
        s.write(room.first(want));
      } else {
        s.write(std::string_view(data).substr(pos, want));
      }
      pos += want;  // no boundaries: every frame is cut at hard_max, inside a write
    }
    s.finish();
    if (in_place) CHECK(hit_hard_max > 0);
    return out.take();
  };
  std::string copied = run(false);
  CHECK(run(true) == copied);
  CHECK(test::decompress_all(copied) == data);
}
