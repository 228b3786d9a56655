// The sized gzip members of framed layers (oci/internal/gzip_sized_header.h) and the decoder
// that inflates them on several threads (oci/internal/parallel_gzip_decoder.cpp): plain gzip to
// every other reader, the same bytes and errors as serial inflate.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/compression.h"
#include "oci/internal/codec.h"
#include "oci/internal/gzip_sized_header.h"
#include "oci/layer_writer.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/verify.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

std::span<const std::byte> as_span(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

struct Framed {
  std::string blob, data;
  std::vector<std::size_t> starts;  // compressed offset of each member
};

// Members of uneven sizes (an empty one too), text and random, as the framed writer makes them.
Framed make_framed(std::size_t members = 9) {
  Framed f;
  auto enc = make_frame_encoder(Codec::Gzip, -1);
  for (std::size_t i = 0; i < members; ++i) {
    std::size_t n = i == 3 ? 0 : 50000 + i * 97531;
    std::string part = i % 2 ? test::random_bytes(n, i) : test::text_bytes(n, i);
    f.starts.push_back(f.blob.size());
    enc->encode(as_span(part), f.blob);
    f.data += part;
  }
  return f;
}

struct Decoded {
  std::string data;
  std::optional<Error> error;
};

// Reads everything in pieces of `step` bytes, keeping what came before an error.
Decoded decode(const std::string& blob, internal::GzipDecoderOptions o, std::size_t step = 100003) {
  Decoded d;
  auto src = internal::make_gzip_decoder(std::make_unique<MemorySource>(blob), "test blob", o);
  std::vector<std::byte> buf(step);
  try {
    while (std::size_t n = src->read(buf)) d.data.append(reinterpret_cast<const char*>(buf.data()), n);
  } catch (const Error& e) {
    d.error = e;
  }
  return d;
}

const internal::GzipDecoderOptions kParallel{.threads = 2}, kSerial{.threads = 0},
    kParallelZlib{.threads = 2, .zlib = true}, kSerialZlib{.threads = 0, .zlib = true};

void set_sizes(std::string& blob, std::size_t at, std::int64_t dc, std::int64_t du) {
  auto s = internal::parse_sized_gzip_header(
      std::span(reinterpret_cast<const std::uint8_t*>(blob.data()) + at, blob.size() - at));
  REQUIRE(s);
  internal::set_sized_gzip_header(blob.data() + at, {static_cast<std::uint32_t>(s->compressed + dc),
                                                     static_cast<std::uint32_t>(s->uncompressed + du)});
}

}  // namespace

TEST_CASE("gzip frames carry their sizes in an extra field that gzip(1) ignores") {
  Framed f = make_framed();
  for (std::size_t i = 0; i < f.starts.size(); ++i) {
    CAPTURE(i);
    auto s = internal::parse_sized_gzip_header(
        std::span(reinterpret_cast<const std::uint8_t*>(f.blob.data()) + f.starts[i], f.blob.size() - f.starts[i]));
    REQUIRE(s);
    std::size_t end = i + 1 < f.starts.size() ? f.starts[i + 1] : f.blob.size();
    CHECK(s->compressed == end - f.starts[i]);
  }
  CHECK((test::run_filter("gzip -dc", f.blob) == f.data));
  CHECK(test::run_filter("(gzip -t && echo ok)", f.blob) == "ok\n");
  // Streams that are not framed keep the plain header.
  BufferSink out;
  auto sink = make_compress_sink(out, Codec::Gzip);
  sink->write(std::string_view("plain"));
  sink->finish();
  std::string plain = out.take();
  CHECK_FALSE(internal::parse_sized_gzip_header(std::span(reinterpret_cast<const std::uint8_t*>(plain.data()), plain.size())));
  CHECK(encoder_id(Codec::Gzip, -1).find("+sized") != std::string::npos);
}

TEST_CASE("parallel and serial inflate give the same bytes, with ISA-L and zlib, for any read size") {
  Framed f = make_framed();
  for (auto o : {kParallel, kSerial, kParallelZlib, kSerialZlib}) {
    for (std::size_t step : {std::size_t{1} << 20, std::size_t{4093}}) {
      CAPTURE(o.threads);
      CAPTURE(o.zlib);
      CAPTURE(step);
      Decoded d = decode(f.blob, o, step);
      CHECK_FALSE(d.error);
      CHECK((d.data == f.data));
    }
  }
  // One thread, and the zlib encoder's frames.
  CHECK((decode(f.blob, {.threads = 1}).data == f.data));
  auto z = internal::make_zlib_gzip_encoder(6, true);
  std::string zblob;
  z->begin(f.data.size());
  z->update(as_span(f.data), zblob, true);
  CHECK(internal::parse_sized_gzip_header(std::span(reinterpret_cast<const std::uint8_t*>(zblob.data()), zblob.size())));
  CHECK((decode(zblob, kParallel).data == f.data));
  CHECK((test::run_filter("gzip -dc", zblob) == f.data));
}

TEST_CASE("foreign gzip members, before, between or after sized ones, are read serially") {
  Framed f = make_framed(4);
  std::string foreign = test::text_bytes(300000, 77);
  std::string gz = test::run_filter("gzip -6c", foreign);
  std::string two = test::run_filter("gzip -1c", foreign) + test::run_filter("gzip -9c", "tail");
  for (auto o : {kParallel, kSerial}) {
    CAPTURE(o.threads);
    CHECK((decode(gz + f.blob, o).data == foreign + f.data));
    CHECK((decode(f.blob + gz + f.blob, o).data == f.data + foreign + f.data));
    CHECK((decode(f.blob + two, o).data == f.data + foreign + "tail"));
    CHECK((decode(two, o).data == foreign + "tail"));
  }
  // A size field out of range is not trusted for allocation: that member and the rest go serially.
  std::string big = f.blob;
  set_sizes(big, f.starts[1], 0, 0x7fffffff);
  Decoded d = decode(big, kParallel);
  CHECK_FALSE(d.error);
  CHECK((d.data == f.data));
}

TEST_CASE("a corrupt member, size field or trailer gives DataLoss after the bytes of the members before it") {
  Framed f = make_framed();
  const std::size_t k = 5;  // the member to damage
  std::size_t before = 0;   // uncompressed bytes of members 0..k-1
  {
    Decoded head = decode(f.blob.substr(0, f.starts[k]), kSerial);
    REQUIRE_FALSE(head.error);
    before = head.data.size();
  }
  auto damaged = [&](auto&& damage) {
    std::string b = f.blob;
    damage(b);
    return b;
  };
  std::vector<std::pair<const char*, std::string>> cases = {
      {"deflate data", damaged([&](std::string& b) { b[(f.starts[k] + f.starts[k + 1]) / 2] ^= 0x55; })},
      {"crc", damaged([&](std::string& b) { b[f.starts[k + 1] - 6] ^= 0x01; })},
      {"compressed size +1", damaged([&](std::string& b) { set_sizes(b, f.starts[k], 1, 0); })},
      {"compressed size -1", damaged([&](std::string& b) { set_sizes(b, f.starts[k], -1, 0); })},
      {"uncompressed size +1", damaged([&](std::string& b) { set_sizes(b, f.starts[k], 0, 1); })},
      {"uncompressed size -1", damaged([&](std::string& b) { set_sizes(b, f.starts[k], 0, -1); })},
      {"truncated in a member", f.blob.substr(0, f.starts[k] + 100)},
      {"garbage after the last member", f.blob + "garbage!"},
  };
  for (const auto& [name, blob] : cases) {
    for (auto o : {kParallel, kParallelZlib}) {
      CAPTURE(std::string(name));
      CAPTURE(o.zlib);
      Decoded d = decode(blob, o);
      REQUIRE(d.error);
      CHECK(d.error->kind() == ErrorKind::DataLoss);
      CHECK(std::string(d.error->what()).find("test blob") != std::string::npos);
      CHECK(d.data.size() >= (std::string_view(name) == "garbage after the last member" ? f.data.size() : before));
      // Inflate may yield some garbage of the damaged member before it notices.
      CHECK((d.data.substr(0, before) == f.data.substr(0, before)));
    }
  }
}

namespace {
// Yields `data` in pieces of `step` bytes, then throws (as a verifying source would on a short or
// mismatched blob).
class BreakingSource : public ByteSource {
 public:
  BreakingSource(std::string_view data, std::size_t step) : data_(data), step_(step) {}
  std::size_t read(std::span<std::byte> out) override {
    if (pos_ == data_.size()) throw Error(ErrorKind::Unavailable, "breaking source: gone at " + std::to_string(pos_));
    std::size_t n = std::min({out.size(), step_, data_.size() - pos_});
    std::memcpy(out.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  using ByteSource::read;

 private:
  std::string_view data_;
  std::size_t pos_ = 0, step_;
};
}  // namespace

TEST_CASE("an error of the source is thrown after every member read before it, and again on later reads") {
  Framed f = make_framed();
  for (std::size_t cut : {f.starts[4], f.starts[4] + 30, f.blob.size()}) {
    CAPTURE(cut);
    auto dec = internal::make_gzip_decoder(std::make_unique<BreakingSource>(std::string_view(f.blob).substr(0, cut), 7001),
                                           "test blob", kParallel);
    std::string got;
    std::vector<std::byte> buf(65536);
    try {
      while (std::size_t n = dec->read(buf)) got.append(reinterpret_cast<const char*>(buf.data()), n);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::Unavailable);
    }
    std::size_t want = cut == f.blob.size() ? f.data.size() : decode(f.blob.substr(0, f.starts[4]), kSerial).data.size();
    CHECK(got.size() == want);
    CHECK((got == f.data.substr(0, want)));
    CHECK_THROWS_AS(dec->read(buf), Error);
  }
}

TEST_CASE("a framed gzip layer reads through the store's verified path; a changed byte fails its digest") {
  test::MemoryStore store;
  std::string payload = test::text_bytes(3u << 20, 3) + test::random_bytes(3u << 20, 4);
  LayerWriterOptions o;
  o.codec = Codec::Gzip;
  o.min_frame = 64 * 1024;
  o.max_frame = 256 * 1024;
  auto ingest = store.begin_ingest();
  LayerWriter w(*ingest, o);
  std::string names;
  for (std::size_t at = 0, i = 0; at < payload.size(); at += 300000, ++i) {
    TarEntry e;
    e.path = "f" + std::to_string(i);
    e.type = TarType::File;
    e.mode = 0644;
    std::string_view part = std::string_view(payload).substr(at, 300000);
    e.size = static_cast<std::int64_t>(part.size());
    MemorySource src(part);
    w.tar().add(e, &src);
    names += e.path + "\n";
  }
  LayerResult r = w.finish();
  REQUIRE(r.frames > 3);
  std::string blob = store.blobs.at(r.descriptor.digest);
  CHECK(test::run_filter("tar -tzf -", blob) == names);

  auto read_layer = [&](const std::string& bytes) {
    TarReader tr(open_verified(std::make_unique<MemorySource>(bytes), r.descriptor.digest,
                               static_cast<std::int64_t>(bytes.size()), "layer under test"),
                 "layer under test");
    std::string got;
    while (auto entry = tr.next()) got += read_all(tr.data(), 1u << 30);
    return got;
  };
  CHECK((read_layer(blob) == payload));
  // The OS byte of the second member: every gzip reader still inflates the same data, and the
  // member is no longer sized (so from there the stream is inflated serially) — only the digest
  // can tell.
  std::string os = blob;
  std::size_t second = internal::parse_sized_gzip_header(
                           std::span(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()))
                           ->compressed;
  os[second + 9] = 3;
  for (const std::string& bad : {os, blob.substr(0, blob.size() - 1000)}) {
    try {
      read_layer(bad);
      FAIL("no error");
    } catch (const Error& err) {
      CHECK(err.kind() == ErrorKind::DataLoss);
      CHECK(std::string(err.what()).find("layer under test") != std::string::npos);
    }
  }
}
