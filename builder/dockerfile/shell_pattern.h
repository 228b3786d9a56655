// Shell patterns of ${V#p}, ${V%p} and ${V/p/r} (internal to the front end).
//
// BuildKit turns these patterns into Go regular expressions where only `*` (any run of
// characters), `?` (any one character) and `\`-escaped literals are special, and `.`
// never matches a newline. This reimplements exactly that matcher without a regex engine,
// with memoisation so a hostile pattern costs O(stars × length²) at worst, and that work
// (each matching step, each memo cell, each character of a replacement) is taken from the
// caller's ExpansionBudget: a long value with a hostile pattern ends in LimitError, not in a
// hang. The memo holds at most kMaxMemoCells cells (stars × value length).
#pragma once

#include <stdexcept>
#include <string>

#include "builder/dockerfile/shell_words.h"

namespace cbuild::builder::dockerfile::shell_pattern {

struct PatternError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A bound was reached (the work budget, the memo size or the result length).
struct LimitError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr std::size_t kMaxMemoCells = std::size_t{16} << 20;

// What one operation may use: work from `budget`, a result of at most `max_result` characters.
struct Limits {
  ExpansionBudget& budget;
  std::size_t max_result;
};

// ${V#p} / ${V##p}: removes the shortest (greedy: longest) prefix of value matching pattern.
std::u32string trim_prefix(const std::u32string& pattern, const std::u32string& value, bool greedy,
                           const Limits& limits);
// ${V%p} / ${V%%p}: removes the shortest (greedy: longest) suffix.
std::u32string trim_suffix(const std::u32string& pattern, const std::u32string& value, bool greedy,
                           const Limits& limits);
// ${V/p/r} and ${V//p/r} (all = true; the replacement then expands $0 like Go's Regexp.Expand).
std::u32string replace(const std::u32string& pattern, const std::u32string& value,
                       const std::u32string& replacement, bool all, const Limits& limits);

}  // namespace cbuild::builder::dockerfile::shell_pattern
