// match_component(): Go's filepath.Match for one path component, which COPY/ADD wildcards use
// (declared in copy_files.h).
#include <optional>
#include <string_view>

#include "builder/steps/copy_files.h"

namespace cbuild::builder {

bool match_component(std::string_view pattern, std::string_view name) {
  // Go's filepath.Match for one component: '*' any run, '?' one char, '[...]' classes with
  // ranges and '^' negation, '\' escapes the next character.
  std::size_t p = 0, n = 0, star_p = std::string_view::npos, star_n = 0;
  auto match_class = [&](std::size_t& pi, char c) -> std::optional<bool> {
    // pattern[pi] == '['; returns nullopt on a malformed class.
    std::size_t i = pi + 1;
    bool negate = false;
    if (i < pattern.size() && (pattern[i] == '^' || pattern[i] == '!')) negate = true, ++i;
    bool matched = false;
    bool first = true;
    while (i < pattern.size() && (pattern[i] != ']' || first)) {
      first = false;
      char lo = pattern[i];
      if (lo == '\\' && i + 1 < pattern.size()) lo = pattern[++i];
      char hi = lo;
      if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
        hi = pattern[i + 2];
        if (hi == '\\' && i + 3 < pattern.size()) hi = pattern[i + 3], ++i;
        i += 2;
      }
      if (lo <= c && c <= hi) matched = true;
      ++i;
    }
    if (i >= pattern.size()) return std::nullopt;
    pi = i + 1;
    return matched != negate;
  };
  while (n < name.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_n = n;
        continue;
      }
      if (pc == '?') {
        ++p, ++n;
        continue;
      }
      if (pc == '[') {
        std::size_t pi = p;
        auto m = match_class(pi, name[n]);
        if (!m) return false;
        if (*m) {
          p = pi, ++n;
          continue;
        }
      } else {
        if (pc == '\\' && p + 1 < pattern.size()) pc = pattern[p + 1];
        if (pc == name[n]) {
          p += pattern[p] == '\\' && p + 1 < pattern.size() ? 2 : 1;
          ++n;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace cbuild::builder
