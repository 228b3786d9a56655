// Shell-word expansion with BuildKit's semantics (moby/buildkit frontend/dockerfile/shell).
//
// ShellWords expands `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?m}`,
// `${V?m}`, `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}` and `${V//p/r}`, removes
// quotes and escapes (per the Dockerfile's escape character) and, for process_words(),
// splits the result into words on unquoted whitespace. Patterns know only `*`, `?` and
// escaped literals, as in BuildKit. Invalid UTF-8 is read as U+FFFD, as Go does.
//
// Expansion is bounded, so that a hostile Dockerfile (forty ARGs, each twice the previous
// one) ends in an error instead of exhausting memory and time: one expanded word (and every
// intermediate value, e.g. a ${V//p/r} result) holds at most kMaxExpandedWord characters, and
// all the work of the expansions sharing an ExpansionBudget (characters produced, pattern
// matching steps) is at most its limit. Without a shared budget each call has its own.
//
// Stateless and thread-safe (a shared ExpansionBudget is not: one per planning thread).
// Errors throw cbuild::Error{InvalidArgument} whose message is
// `failed to process "WORD": reason` (callers add FILE:LINE).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace cbuild::builder::dockerfile {

// Returns the value of a variable, or nullopt when it is unset (set-but-empty is "").
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// A lookup over KEY=VALUE pairs; later pairs win. The vector must outlive the lookup.
EnvLookup env_lookup(const std::vector<std::pair<std::string, std::string>>& env);
EnvLookup env_lookup(const std::map<std::string, std::string>& env);

// 8 Mi characters: far above any real ARG/ENV value or heredoc, small enough that the
// handful of copies an expansion makes stay in the low hundreds of MB.
inline constexpr std::size_t kMaxExpandedWord = std::size_t{8} << 20;
// 256 Mi units (a character produced or a pattern-matching step): about a second of work.
inline constexpr std::uint64_t kMaxExpansionWork = std::uint64_t{256} << 20;

// The work left to the expansions of one Dockerfile. Not thread-safe.
class ExpansionBudget {
 public:
  explicit ExpansionBudget(std::uint64_t limit = kMaxExpansionWork) : limit_(limit), left_(limit) {}
  std::uint64_t limit() const noexcept { return limit_; }
  // Takes `units` from the budget; false (and the budget left empty) when they are not there.
  bool spend(std::uint64_t units) noexcept {
    if (units > left_) {
      left_ = 0;
      return false;
    }
    left_ -= units;
    return true;
  }

 private:
  std::uint64_t limit_;
  std::uint64_t left_;
};

struct ShellWordsOptions {
  char escape = '\\';
  bool raw_quotes = false;         // keep quote characters in the result
  bool raw_escapes = false;        // keep escape characters in the result
  bool skip_unset_env = false;     // leave references to unset variables as written
  bool skip_process_quotes = false;  // quotes are ordinary characters
  ExpansionBudget* budget = nullptr;  // shared work budget (must outlive the calls); null: one per call
  std::size_t max_word = kMaxExpandedWord;
};

struct ExpandResult {
  std::string word;                 // the single-word result (no splitting)
  std::vector<std::string> words;   // the result split into words
  std::set<std::string> matched;    // names looked up that were set
  std::set<std::string> unmatched;  // names looked up that were unset
};

class ShellWords {
 public:
  explicit ShellWords(ShellWordsOptions options = {}) : options_(options) {}

  // BuildKit's ProcessWord: one string, quotes removed, variables expanded.
  std::string process_word(std::string_view text, const EnvLookup& env) const;
  // BuildKit's ProcessWords: the expansion split into words.
  std::vector<std::string> process_words(std::string_view text, const EnvLookup& env) const;
  // Both, plus which variable names were consulted.
  ExpandResult expand(std::string_view text, const EnvLookup& env) const;

 private:
  ShellWordsOptions options_;
};

}  // namespace cbuild::builder::dockerfile
