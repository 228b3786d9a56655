// Bytes that neither repeat nor compress (xorshift32 from `seed`), so a wrong offset anywhere
// changes a digest and a layer of them is as big compressed as its files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cbuild::test {

inline std::string noise(std::size_t n, std::uint32_t seed = 2463534242u) {
  std::string s(n, '\0');
  for (auto& c : s) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    c = static_cast<char>(seed);
  }
  return s;
}

}  // namespace cbuild::test
