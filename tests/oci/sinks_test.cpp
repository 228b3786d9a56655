#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "tests/oci/pipeline_test_util.h"

using namespace cbuild;
using namespace cbuild::oci;

TEST_CASE("HashingSink hashes, counts, forwards and finishes its inner sink once") {
  BufferSink inner;
  HashingSink h(&inner);
  h.write(std::string_view("hello "));
  h.write(std::string_view("world"));
  CHECK(h.bytes() == 11);
  CHECK(h.digest() == Digest::of("hello world"));
  CHECK(inner.str() == "hello world");
  CHECK(inner.finished());
  h.finish();  // idempotent
  CHECK(h.digest() == Digest::of("hello world"));
}

TEST_CASE("CountingSink and TeeSink") {
  BufferSink a, b;
  CountingSink c(&a);
  TeeSink tee(c, b);
  tee.write(std::string_view("abc"));
  tee.write(std::string_view(""));
  tee.write(std::string_view("de"));
  tee.finish();
  CHECK(c.bytes() == 5);
  CHECK(a.str() == "abcde");
  CHECK(b.str() == "abcde");
  CHECK(a.finished());
  CHECK(b.finished());
}

TEST_CASE("FileSink writes a file that FdSource reads back; errors name the path") {
  TempDir dir;
  auto p = dir.path() / "out.bin";
  std::string data = test::random_bytes(300000, 1);
  FileSink f(p);
  f.write(data);
  f.finish();
  CHECK_THROWS_AS(f.write(std::string_view("x")), Error);
  auto src = FdSource::open(p);
  CHECK(read_all(*src) == data);
  try {
    FileSink bad(dir.path() / "missing" / "x");
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::NotFound);
    CHECK(std::string(e.what()).find("missing") != std::string::npos);
  }
}

TEST_CASE("MemorySource yields its bytes in pieces and then 0") {
  std::string data = "0123456789";
  MemorySource s(data);
  char buf[4];
  CHECK(s.read(buf, 4) == 4);
  CHECK(std::string(buf, 4) == "0123");
  CHECK(s.read(buf, 4) == 4);
  CHECK(s.read(buf, 4) == 2);
  CHECK(s.read(buf, 4) == 0);
}
