#include "builder/dockerfile/shell_pattern.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "builder/dockerfile/unicode.h"

namespace cbuild::builder::dockerfile::shell_pattern {

namespace {

constexpr std::size_t kMaxStars = 256;

struct Token {
  enum Kind { Lit, Any, Star } kind;
  char32_t c = 0;
};

std::vector<Token> compile(const std::u32string& p) {
  std::vector<Token> out;
  std::size_t stars = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char32_t c = p[i];
    if (c == '*') {
      if (++stars > kMaxStars) throw PatternError("too many wildcards");
      out.push_back({Token::Star});
    } else if (c == '?') {
      out.push_back({Token::Any});
    } else if (c == '\\') {
      // An escaped } or / belongs to the ${} syntax: the backslash is not part of the pattern.
      if (i + 1 < p.size() && (p[i + 1] == '}' || p[i + 1] == '/')) continue;
      if (i + 1 >= p.size()) throw PatternError("invalid escape '\\'");
      char32_t n = p[++i];
      if (n != '*' && n != '?' && n != '\\' && n != '[' && n != ']') {
        std::string s = "invalid escape '\\";
        unicode::append(s, n);
        throw PatternError(s + "'");
      }
      out.push_back({Token::Lit, n});
    } else {
      out.push_back({Token::Lit, c});
    }
  }
  return out;
}

void spend(const Limits& limits, std::uint64_t units) {
  if (!limits.budget.spend(units))
    throw LimitError("the expansion work of the Dockerfile exceeds its limit of " +
                     std::to_string(limits.budget.limit()) + " units");
}

class Matcher {
 public:
  Matcher(const std::vector<Token>& toks, const std::u32string& text, bool greedy, const Limits& limits)
      : toks_(toks), text_(text), greedy_(greedy), limits_(limits), star_index_(toks.size(), 0) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < toks.size(); ++i)
      if (toks[i].kind == Token::Star) star_index_[i] = n++;
    std::size_t cells = n * (text.size() + 1);
    if (n != 0 && cells / n != text.size() + 1) cells = kMaxMemoCells + 1;
    if (cells > kMaxMemoCells)
      throw LimitError("pattern with " + std::to_string(n) + " wildcards over a value of " +
                       std::to_string(text.size()) + " characters is too costly to match");
    spend(limits_, cells + toks.size());
    memo_.assign(cells, kUnknown);
  }

  // End of the preferred match starting exactly at pos, or -1.
  long match_at(std::size_t pos) { return match(0, pos); }

 private:
  static constexpr long kUnknown = -2;

  // Charges matching steps in batches (a step is a few instructions).
  void step() {
    if (++steps_ == kBatch) {
      steps_ = 0;
      spend(limits_, kBatch);
    }
  }

  long match(std::size_t k, std::size_t pos) {
    const std::size_t n = text_.size();
    while (k < toks_.size() && toks_[k].kind != Token::Star) {
      step();
      if (pos >= n) return -1;
      if (toks_[k].kind == Token::Lit ? text_[pos] != toks_[k].c : text_[pos] == '\n') return -1;
      ++k, ++pos;
    }
    if (k == toks_.size()) return static_cast<long>(pos);
    long& slot = memo_[star_index_[k] * (n + 1) + pos];
    if (slot != kUnknown) return slot;
    std::size_t lim = pos;
    while (lim < n && text_[lim] != '\n') ++lim, step();
    long r = -1;
    if (greedy_) {
      for (std::size_t e = lim + 1; e-- > pos;)
        if (step(), (r = match(k + 1, e)) >= 0) break;
    } else {
      for (std::size_t e = pos; e <= lim; ++e)
        if (step(), (r = match(k + 1, e)) >= 0) break;
    }
    slot = r;
    return r;
  }

  static constexpr std::uint64_t kBatch = 4096;
  const std::vector<Token>& toks_;
  const std::u32string& text_;
  bool greedy_;
  const Limits& limits_;
  std::uint64_t steps_ = 0;
  std::vector<std::size_t> star_index_;
  std::vector<long> memo_;
};

std::u32string reverse_pattern(const std::u32string& p) {
  std::u32string out(p.size(), 0);
  const std::size_t last = p.size() - 1;
  for (std::size_t i = 0; i < p.size();) {
    std::size_t o = last - i;
    if (p[i] == '\\' && i != last) {
      out[o - 1] = p[i];
      out[o] = p[i + 1];
      i += 2;
      continue;
    }
    out[o] = p[i];
    ++i;
  }
  return out;
}

void check_result(const std::u32string& out, const Limits& limits) {
  if (out.size() > limits.max_result)
    throw LimitError("the result exceeds the limit of " + std::to_string(limits.max_result) + " characters");
}

// Go's Regexp.Expand for a pattern without groups: $0 / ${0} is the match, $$ is $,
// other well-formed names are empty, a malformed $ is literal.

void expand_template(std::u32string& out, const std::u32string& tmpl, std::u32string_view match,
                     const Limits& limits) {
  for (std::size_t i = 0; i < tmpl.size();) {
    if (tmpl[i] != '$') {
      out += tmpl[i++];
      continue;
    }
    ++i;
    if (i < tmpl.size() && tmpl[i] == '$') {
      out += '$';
      ++i;
      continue;
    }
    std::size_t j = i;
    bool brace = j < tmpl.size() && tmpl[j] == '{';
    if (brace) ++j;
    std::size_t start = j;
    while (j < tmpl.size() && (unicode::is_letter(tmpl[j]) || unicode::is_digit(tmpl[j]) || tmpl[j] == '_')) ++j;
    if (j == start || (brace && (j >= tmpl.size() || tmpl[j] != '}'))) {
      out += '$';
      continue;
    }
    std::u32string name = tmpl.substr(start, j - start);
    if (brace) ++j;
    if (name == U"0") {
      out += match;
      check_result(out, limits);
    }
    i = j;
  }
}

}  // namespace

std::u32string trim_prefix(const std::u32string& pattern, const std::u32string& value, bool greedy,
                           const Limits& limits) {
  auto toks = compile(pattern);
  Matcher m(toks, value, greedy, limits);
  long end = m.match_at(0);
  if (end < 0) return value;
  return value.substr(static_cast<std::size_t>(end));
}

std::u32string trim_suffix(const std::u32string& pattern, const std::u32string& value, bool greedy,
                           const Limits& limits) {
  std::u32string p = pattern.empty() ? pattern : reverse_pattern(pattern);
  std::u32string v(value.rbegin(), value.rend());
  std::u32string r = trim_prefix(p, v, greedy, limits);
  return std::u32string(r.rbegin(), r.rend());
}

std::u32string replace(const std::u32string& pattern, const std::u32string& value, const std::u32string& repl,
                       bool all, const Limits& limits) {
  auto toks = compile(pattern);
  Matcher m(toks, value, true, limits);
  auto find_from = [&](std::size_t from) -> std::optional<std::pair<std::size_t, std::size_t>> {
    for (std::size_t s = from; s <= value.size(); ++s) {
      long e = m.match_at(s);
      if (e >= 0) return std::make_pair(s, static_cast<std::size_t>(e));
    }
    return std::nullopt;
  };
  if (!all) {
    auto f = find_from(0);
    if (!f) return value;
    std::u32string out = value.substr(0, f->first) + repl + value.substr(f->second);
    check_result(out, limits);
    spend(limits, out.size());
    return out;
  }
  std::u32string out;
  std::size_t last_end = 0;
  std::size_t search = 0;
  while (search <= value.size()) {
    auto f = find_from(search);
    if (!f) break;
    auto [a0, a1] = *f;
    std::size_t before = out.size();
    out.append(value, last_end, a0 - last_end);
    // No replacement for an empty match right after the previous match (Go's rule).
    if (a1 > last_end || a0 == 0) expand_template(out, repl, std::u32string_view(value).substr(a0, a1 - a0), limits);
    check_result(out, limits);
    spend(limits, out.size() - before + 1);
    last_end = a1;
    search = search + 1 > a1 ? search + 1 : a1;
  }
  out.append(value, last_end, std::u32string::npos);
  check_result(out, limits);
  return out;
}

}  // namespace cbuild::builder::dockerfile::shell_pattern
