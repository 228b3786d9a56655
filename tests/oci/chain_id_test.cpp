#include <doctest/doctest.h>

#include "oci/chain_id.h"

using namespace cbuild::oci;

TEST_CASE("chain IDs follow the image-spec definition") {
  Digest a = Digest::of("layer a"), b = Digest::of("layer b"), c = Digest::of("layer c");
  CHECK(chain_id(std::nullopt, a) == a);
  Digest ab = chain_id(a, b);
  CHECK(ab == Digest::of(a.str() + " " + b.str()));
  CHECK(ab != chain_id(b, a));  // order matters
  auto ids = chain_ids({a, b, c});
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] == a);
  CHECK(ids[1] == ab);
  CHECK(ids[2] == Digest::of(ab.str() + " " + c.str()));
  CHECK(chain_ids({}).empty());
  // A vector computed with sha256sum over "sha256:<64 a> sha256:<64 b>".
  Digest x = Digest::sha256_hex(std::string(64, 'a')), y = Digest::sha256_hex(std::string(64, 'b'));
  CHECK(chain_id(x, y).hex() == "ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
}
