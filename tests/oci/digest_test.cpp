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
