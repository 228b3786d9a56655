#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "oci/base/error.h"
#include "oci/read_ahead.h"
#include "oci/sinks.h"
#include "oci/verify.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

// Returns its data in pieces of `step` bytes and then throws, or ends, as told; counts reads.
class ScriptedSource : public ByteSource {
 public:
  ScriptedSource(std::string data, std::size_t step, bool throw_at_end)
      : data_(std::move(data)), step_(step), throw_(throw_at_end) {}
  std::size_t read(std::span<std::byte> out) override {
    reads.fetch_add(1);
    if (pos_ == data_.size()) {
      if (throw_) throw Error(ErrorKind::DataLoss, "scripted: broken at " + std::to_string(pos_));
      return 0;
    }
    std::size_t n = std::min({out.size(), step_, data_.size() - pos_});
    std::memcpy(out.data(), data_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  using ByteSource::read;
  std::atomic<int> reads{0};

 private:
  std::string data_;
  std::size_t pos_ = 0, step_;
  bool throw_;
};

}  // namespace

TEST_CASE("ReadAheadSource gives the same bytes for any chunk size, depth and read size") {
  std::string data = test::random_bytes(1000003, 7);
  for (std::size_t chunk : {1u, 4096u, 65536u, 1u << 20, 4u << 20})
    for (std::size_t depth : {1u, 3u}) {
      ReadAheadSource r(std::make_unique<ScriptedSource>(data, 70001, false), chunk, depth);
      std::string got;
      std::vector<std::byte> buf(chunk == 1 ? 3 : 100000);
      while (std::size_t n = r.read(buf)) got.append(reinterpret_cast<const char*>(buf.data()), n);
      CHECK(got == data);
      CHECK(r.read(buf) == 0);  // EOF stays EOF
    }
}

TEST_CASE("ReadAheadSource rethrows the inner error after the bytes before it, and on every later read") {
  std::string data = test::random_bytes(300000, 8);
  ReadAheadSource r(std::make_unique<ScriptedSource>(data, 4096, true), 65536, 2);
  std::string got;
  std::vector<std::byte> buf(10000);
  std::string message;
  try {
    while (std::size_t n = r.read(buf)) got.append(reinterpret_cast<const char*>(buf.data()), n);
  } catch (const Error& e) {
    message = e.what();
  }
  CHECK(got == data);
  CHECK(message.find("broken at 300000") != std::string::npos);
  CHECK_THROWS_AS(r.read(buf), Error);
}

TEST_CASE("ReadAheadSource over a VerifyingSource: EOF only once the digest matched; a flipped byte throws DataLoss") {
  std::string data = test::random_bytes(3u << 20, 9);
  {
    auto src = open_verified(std::make_unique<MemorySource>(data), Digest::of(data),
                             static_cast<std::int64_t>(data.size()), "blob sha256:test");
    CHECK(read_all(*src, 8u << 20) == data);
  }
  std::string flipped = data;
  flipped[flipped.size() / 2] ^= 1;
  auto src = open_verified(std::make_unique<MemorySource>(flipped), Digest::of(data),
                           static_cast<std::int64_t>(data.size()), "blob sha256:test");
  try {
    read_all(*src, 8u << 20);
    FAIL("a corrupt blob read to the end");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("blob sha256:test: digest mismatch") != std::string::npos);
  }
}

TEST_CASE("ReadAheadSource stays a bounded number of chunks ahead, and destroying it mid-stream stops the thread") {
  std::string data = test::random_bytes(1u << 20, 10);
  auto inner = std::make_unique<ScriptedSource>(data, 1024, false);
  ScriptedSource* raw = inner.get();
  {
    ReadAheadSource r(std::move(inner), 4096, 2);
    std::vector<std::byte> buf(100);
    CHECK(r.read(buf) == 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // `depth` chunks at most, the one being read included: 2 × 4 reads of 1 KiB.
    CHECK(raw->reads.load() >= 4);
    CHECK(raw->reads.load() <= 8);
  }  // joins without reading the rest
}

TEST_CASE("ReadAheadSource::read_view points into its chunks and gives the same bytes and the same error") {
  std::string data = test::random_bytes(700001, 9);
  for (bool fail : {false, true}) {
    ReadAheadSource r(std::make_unique<ScriptedSource>(data, 65536, fail), 100000, 2);
    std::vector<std::byte> scratch(30000);
    std::string got;
    bool copied = false;
    try {
      for (;;) {
        std::span<const std::byte> v = r.read_view(scratch);
        if (v.empty()) break;
        CHECK(v.size() <= scratch.size());
        copied |= v.data() == scratch.data();
        got.append(reinterpret_cast<const char*>(v.data()), v.size());
      }
      CHECK_FALSE(fail);
    } catch (const Error& e) {
      CHECK(fail);
      CHECK(e.kind() == ErrorKind::DataLoss);
    }
    CHECK_FALSE(copied);
    CHECK((got == data));
  }
  // The default implementation reads into the scratch buffer.
  MemorySource m("abc");
  std::vector<std::byte> scratch(2);
  CHECK(m.read_view(scratch).size() == 2);
  CHECK(m.read_view(scratch).data() == scratch.data());
  CHECK(m.read_view(scratch).empty());
}
