#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/sinks.h"
#include "oci/verify.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {
std::unique_ptr<VerifyingSource> make(const std::string& data, const std::string& content_for_digest,
                                      std::optional<std::int64_t> size) {
  return std::make_unique<VerifyingSource>(std::make_unique<MemorySource>(data), Digest::of(content_for_digest), size,
                                           "blob sha256:test");
}
ErrorKind kind_of_read_all(ByteSource& s) {
  try {
    read_all(s);
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::Internal;  // no error (tests compare against DataLoss)
}
}  // namespace

TEST_CASE("VerifyingSource passes matching content and reports verified only at EOF") {
  std::string data = test::random_bytes(200000, 3);
  auto v = make(data, data, static_cast<std::int64_t>(data.size()));
  char buf[1000];
  CHECK(v->read(buf, sizeof buf) == sizeof buf);
  CHECK_FALSE(v->verified());
  std::string rest = read_all(*v);
  CHECK(rest.size() == data.size() - 1000);
  CHECK(v->verified());
}

TEST_CASE("VerifyingSource rejects a flipped byte, a truncation and extra bytes with DataLoss") {
  std::string data = test::random_bytes(100000, 4);
  std::string flipped = data;
  flipped[5000] ^= 1;
  auto a = make(flipped, data, static_cast<std::int64_t>(data.size()));
  CHECK(kind_of_read_all(*a) == ErrorKind::DataLoss);
  // It keeps failing (a caller retrying read() cannot get a silent EOF).
  char c;
  CHECK_THROWS_AS(a->read(&c, 1), Error);

  std::string short_data = data.substr(0, 99999), long_data = data + "x";  // MemorySource borrows them
  auto b = make(short_data, data, static_cast<std::int64_t>(data.size()));
  try {
    read_all(*b);
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("truncated") != std::string::npos);
    CHECK(std::string(e.what()).find("blob sha256:test") != std::string::npos);
  }
  auto d = make(long_data, data, static_cast<std::int64_t>(data.size()));
  CHECK(kind_of_read_all(*d) == ErrorKind::DataLoss);
  // Unknown size: only the digest is checked.
  auto e = make(data, data, std::nullopt);
  CHECK(read_all(*e).size() == data.size());
  CHECK(e->verified());
}

TEST_CASE("VerifyingSource enforces max_size without an expected size") {
  std::string data(5000, 'a');
  VerifyingSource v(std::make_unique<MemorySource>(data), Digest::of(data), std::nullopt, "blob", 4096);
  CHECK(kind_of_read_all(v) == ErrorKind::DataLoss);
}
