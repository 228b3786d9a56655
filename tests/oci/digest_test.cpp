#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/digest.h"

using cbuild::oci::Digest;

TEST_CASE("digest of empty input and of abc match the SHA-256 test vectors") {
  CHECK(Digest::of("").str() == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Digest::of("abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("incremental hashing equals one-shot hashing") {
  cbuild::oci::Sha256 h;
  h.update("a");
  h.update("bc");
  CHECK(h.finish() == Digest::of("abc"));
  CHECK(h.finish() == Digest::of(""));  // reset after finish
}

TEST_CASE("digest parsing rejects malformed digests and names the document") {
  CHECK(Digest::parse("sha256:" + std::string(64, 'a')).algorithm() == "sha256");
  CHECK_FALSE(Digest::try_parse("sha256:" + std::string(63, 'a')));
  CHECK_FALSE(Digest::try_parse("sha256:" + std::string(64, 'A')));
  CHECK_FALSE(Digest::try_parse(std::string(64, 'a')));
  CHECK_FALSE(Digest::try_parse("md5:" + std::string(32, 'a')));
  CHECK(Digest::try_parse("sha512:" + std::string(128, '0')));
  try {
    Digest::parse("sha256:xyz", "manifest config digest");
    FAIL("no throw");
  } catch (const cbuild::Error& e) {
    CHECK(e.kind() == cbuild::ErrorKind::InvalidArgument);
    CHECK(std::string(e.what()).find("manifest config digest") != std::string::npos);
  }
}

TEST_CASE("a saved SHA-256 state resumes the same hash, at any split point") {
  std::string data;
  for (int i = 0; i < 300; ++i) data.push_back(static_cast<char>(i * 7 + 3));
  Digest whole = Digest::of(data);
  for (std::size_t split : {0u, 1u, 55u, 63u, 64u, 65u, 128u, 191u, 300u}) {
    CAPTURE(split);
    cbuild::oci::Sha256 a;
    a.update(data.data(), split);
    auto state = a.state();
    CHECK(state.bytes == split);
    CHECK(a.bytes() == split);
    CHECK(state.tail.size() == split % 64);
    // Through its text form, into a hasher that has hashed something else.
    auto parsed = cbuild::oci::Sha256::State::parse(state.to_text());
    REQUIRE(parsed);
    CHECK(*parsed == state);
    cbuild::oci::Sha256 b;
    b.update("unrelated bytes that restore must discard");
    b.restore(*parsed);
    b.update(data.data() + split, data.size() - split);
    CHECK(b.finish() == whole);
    a.update(data.data() + split, data.size() - split);  // the saved-from hasher goes on unchanged
    CHECK(a.finish() == whole);
  }
}

TEST_CASE("a SHA-256 state text that is malformed or inconsistent does not parse") {
  cbuild::oci::Sha256 h;
  h.update("abcdefghij");
  std::string good = h.state().to_text();
  REQUIRE(cbuild::oci::Sha256::State::parse(good));
  CHECK_FALSE(cbuild::oci::Sha256::State::parse(""));
  CHECK_FALSE(cbuild::oci::Sha256::State::parse(good.substr(0, good.size() - 2)));    // tail too short
  CHECK_FALSE(cbuild::oci::Sha256::State::parse(good + "00"));                        // tail too long
  std::string upper = good;
  upper[0] = 'G';
  CHECK_FALSE(cbuild::oci::Sha256::State::parse(upper));
  std::string wrong_len = good;
  wrong_len.replace(65, 2, "11");  // "10" bytes → "11": the tail no longer matches
  CHECK_FALSE(cbuild::oci::Sha256::State::parse(wrong_len));
  cbuild::oci::Sha256::State bad = h.state();
  bad.tail.pop_back();
  CHECK_THROWS_AS(h.restore(bad), cbuild::Error);
}
