// Shell patterns of ${V#p}, ${V%p} and ${V/p/r} (internal to the front end).
//
// BuildKit turns these patterns into Go regular expressions where only `*` (any run of
// characters), `?` (any one character) and `\`-escaped literals are special, and `.`
// never matches a newline. This reimplements exactly that matcher without a regex engine,
// with memoisation so a hostile pattern costs O(stars × length²) at worst.
#pragma once

#include <stdexcept>
#include <string>

namespace cbuild::builder::dockerfile::shell_pattern {

struct PatternError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ${V#p} / ${V##p}: removes the shortest (greedy: longest) prefix of value matching pattern.
std::u32string trim_prefix(const std::u32string& pattern, const std::u32string& value, bool greedy);
// ${V%p} / ${V%%p}: removes the shortest (greedy: longest) suffix.
std::u32string trim_suffix(const std::u32string& pattern, const std::u32string& value, bool greedy);
// ${V/p/r} and ${V//p/r} (all = true; the replacement then expands $0 like Go's Regexp.Expand).
std::u32string replace(const std::u32string& pattern, const std::u32string& value,
                       const std::u32string& replacement, bool all);

}  // namespace cbuild::builder::dockerfile::shell_pattern
