// Follows BuildKit's lexer structure (processStopOn / processDollar / quotes) so that the
// corner cases of the conformance vectors come out the same; see shell_words.h.
#include "builder/dockerfile/shell_words.h"

#include "builder/dockerfile/shell_pattern.h"
#include "builder/dockerfile/unicode.h"
#include "oci/base/error.h"

namespace cbuild::builder::dockerfile {

namespace {

constexpr char32_t kEof = static_cast<char32_t>(-1);
constexpr int kMaxDepth = 200;  // nested ${…} / quotes; deeper input is refused, not crashed on

struct Fail {
  std::string reason;
};

// Accumulates the split words like BuildKit's wordsStruct.
struct Words {
  std::u32string word;
  std::vector<std::string> words;
  bool in_word = false;

  void add_char(char32_t c) {
    if (unicode::is_space(c) && in_word) {
      if (!word.empty()) {
        words.push_back(unicode::encode(word));
        word.clear();
        in_word = false;
      }
    } else if (!unicode::is_space(c)) {
      add_raw_char(c);
    }
  }
  void add_raw_char(char32_t c) {
    word += c;
    in_word = true;
  }
  void add_string(std::u32string_view s) {
    for (char32_t c : s) add_char(c);
  }
  void add_raw_string(std::u32string_view s) {
    word += s;
    in_word = true;
  }
  std::vector<std::string> take() {
    if (!word.empty()) {
      words.push_back(unicode::encode(word));
      word.clear();
      in_word = false;
    }
    return std::move(words);
  }
};

class Lexer {
 public:
  Lexer(std::u32string src, const ShellWordsOptions& o, const EnvLookup& env, ExpandResult& res,
        ExpansionBudget& budget)
      : src_(std::move(src)), opt_(o), env_(env), res_(res), budget_(budget), raw_escapes_(o.raw_escapes) {
    charge(src_.size() + 1);
    check_size(src_.size());
    // text/scanner skips a byte-order mark at the very start.
    if (!src_.empty() && src_[0] == 0xFEFF) pos_ = 1;
  }

  void run() {
    auto [word, words] = stop_on(kEof, raw_escapes_);
    res_.word = unicode::encode(word);
    res_.words = std::move(words);
  }

 private:
  void charge(std::uint64_t units) {
    if (!budget_.spend(units))
      throw Fail{"the expansion work of the Dockerfile exceeds its limit of " + std::to_string(budget_.limit()) +
                 " units (characters produced and pattern-matching steps)"};
  }
  void check_size(std::size_t size) const {
    if (size > opt_.max_word)
      throw Fail{"the expanded word exceeds the limit of " + std::to_string(opt_.max_word) + " characters"};
  }
  // Appends an expansion's result to a word being built.
  void append(std::u32string& to, const std::u32string& piece) {
    charge(piece.size());
    check_size(to.size() + piece.size());
    to += piece;
  }

  char32_t peek() const { return pos_ < src_.size() ? src_[pos_] : kEof; }
  char32_t next() { return pos_ < src_.size() ? src_[pos_++] : kEof; }

  // The operand of a ${…} modifier, up to `stop`; running out of input is `missing` (the
  // shell's message), any other failure inside the operand is its own.
  std::u32string operand(char32_t stop, bool raw_escapes, const char* missing) {
    try {
      return stop_on(stop, raw_escapes).first;
    } catch (const Fail&) {
      if (peek() == kEof) throw Fail{missing};
      throw;
    }
  }

  std::pair<std::u32string, std::vector<std::string>> stop_on(char32_t stop, bool raw_escapes) {
    if (++depth_ > kMaxDepth) throw Fail{"expression nested too deeply"};
    bool saved = raw_escapes_;
    raw_escapes_ = raw_escapes;
    std::u32string result;
    Words words;
    while (peek() != kEof) {
      char32_t c = peek();
      if (stop != kEof && c == stop) {
        next();
        raw_escapes_ = saved;
        --depth_;
        return {result, words.take()};
      }
      if (c == '$') {
        std::u32string tmp = dollar();
        append(result, tmp);
        words.add_string(tmp);
      } else if (!opt_.skip_process_quotes && (c == '\'' || c == '"')) {
        std::u32string tmp = c == '\'' ? single_quote() : double_quote();
        append(result, tmp);
        words.add_raw_string(tmp);
      } else {
        c = next();
        if (c == static_cast<char32_t>(opt_.escape)) {
          if (raw_escapes_) {
            words.add_raw_char(c);
            result += c;
          }
          c = next();
          if (c == kEof) break;
          words.add_raw_char(c);
        } else {
          words.add_char(c);
        }
        result += c;
      }
    }
    raw_escapes_ = saved;
    --depth_;
    if (stop != kEof) {
      std::string s;
      unicode::append(s, stop);
      throw Fail{"unexpected end of statement while looking for matching " + s};
    }
    return {result, words.take()};
  }

  std::u32string single_quote() {
    std::u32string out;
    char32_t c = next();
    if (opt_.raw_quotes) out += c;
    for (;;) {
      c = next();
      if (c == kEof) throw Fail{"unexpected end of statement while looking for matching single-quote"};
      if (c == '\'') {
        if (opt_.raw_quotes) out += c;
        return out;
      }
      out += c;
    }
  }

  std::u32string double_quote() {
    std::u32string out;
    char32_t c = next();
    if (opt_.raw_quotes) out += c;
    for (;;) {
      char32_t p = peek();
      if (p == kEof) throw Fail{"unexpected end of statement while looking for matching double-quote"};
      if (p == '"') {
        c = next();
        if (opt_.raw_quotes) out += c;
        return out;
      }
      if (p == '$') {
        append(out, dollar());
        continue;
      }
      c = next();
      if (c == static_cast<char32_t>(opt_.escape)) {
        char32_t n = peek();
        if (n == kEof) continue;  // an escape at the very end is dropped
        if (n == '"' || n == '$' || n == static_cast<char32_t>(opt_.escape)) {
          if (raw_escapes_) out += c;
          c = next();
        }
      }
      out += c;
    }
  }

  std::u32string name() {
    std::u32string n;
    while (peek() != kEof) {
      char32_t c = peek();
      if (n.empty() && unicode::is_digit(c)) {
        while (peek() != kEof && unicode::is_digit(peek())) n += next();
        return n;
      }
      if (n.empty()) {
        switch (c) {
          case '@': case '*': case '#': case '?': case '-': case '$': case '!': case '0':
            next();
            return std::u32string(1, c);
          default:
            break;
        }
      }
      if (!unicode::is_letter(c) && !unicode::is_digit(c) && c != '_') break;
      n += next();
    }
    return n;
  }

  std::optional<std::u32string> get_env(const std::u32string& n) {
    std::string key = unicode::encode(n);
    std::optional<std::string> v = env_ ? env_(key) : std::nullopt;
    if (v) {
      res_.matched.insert(key);
      charge(v->size());
      std::u32string value = unicode::decode_all(*v);
      check_size(value.size());
      return value;
    }
    res_.unmatched.insert(key);
    return std::nullopt;
  }

  std::u32string dollar() {
    next();  // '$'
    if (peek() != '{') {
      std::u32string n = name();
      if (n.empty()) return U"$";
      auto v = get_env(n);
      if (!v && opt_.skip_unset_env) return U"$" + n;
      return v.value_or(U"");
    }
    next();  // '{'
    switch (peek()) {
      case kEof:
        throw Fail{"syntax error: missing '}'"};
      case '{': case '}': case ':':
        throw Fail{"syntax error: bad substitution"};
      default:
        break;
    }
    std::u32string n = name();
    char32_t c = next();
    std::u32string chs;
    if (c != kEof) chs += c;
    bool null_is_unset = false;
    switch (c) {
      case '}': {
        auto v = get_env(n);
        if (!v && opt_.skip_unset_env) return U"${" + n + U"}";
        return v.value_or(U"");
      }
      case ':':
        null_is_unset = true;
        c = next();
        if (c != kEof) chs += c;
        [[fallthrough]];
      case '+': case '-': case '?': case '#': case '%': {
        if (c != '+' && c != '-' && c != '?' && c != '#' && c != '%') {
          if (c == kEof) throw Fail{"syntax error: missing '}'"};
          throw Fail{"unsupported modifier (" + unicode::encode(chs) + ") in substitution"};
        }
        bool raw = c == '#' || c == '%';
        if (null_is_unset && raw)
          throw Fail{"unsupported modifier (" + unicode::encode(chs) + ") in substitution"};
        std::u32string word = operand(U'}', raw, "syntax error: missing '}'");
        auto v = get_env(n);
        if (opt_.skip_unset_env && !v) return U"${" + n + chs + word + U"}";
        bool empty_or_unset = !v || (null_is_unset && v->empty());
        switch (c) {
          case '-':
            return empty_or_unset ? word : *v;
          case '+':
            return empty_or_unset ? U"" : word;
          case '?':
            if (!v)
              throw Fail{unicode::encode(n) + ": " + (word.empty() ? std::string("is not allowed to be unset")
                                                                    : unicode::encode(word))};
            if (null_is_unset && v->empty())
              throw Fail{unicode::encode(n) + ": " + (word.empty() ? std::string("is not allowed to be empty")
                                                                    : unicode::encode(word))};
            return *v;
          default: {
            bool greedy = false;
            if (!word.empty() && word[0] == c) {
              greedy = true;
              word.erase(0, 1);
            }
            std::u32string value = v.value_or(U"");
            try {
              shell_pattern::Limits limits{budget_, opt_.max_word};
              return c == '%' ? shell_pattern::trim_suffix(word, value, greedy, limits)
                              : shell_pattern::trim_prefix(word, value, greedy, limits);
            } catch (const shell_pattern::PatternError& e) {
              throw Fail{"invalid pattern (" + unicode::encode(word) + ") in substitution: " + e.what()};
            } catch (const shell_pattern::LimitError& e) {
              throw Fail{e.what()};
            }
          }
        }
      }
      case '/': {
        bool all = peek() == '/';
        if (all) next();
        std::u32string pattern = operand(U'/', true, "syntax error: missing '/' in ${}");
        std::u32string repl = operand(U'}', true, "syntax error: missing '}'");
        auto v = get_env(n);
        if (opt_.skip_unset_env && !v) return U"${" + n + U"/" + pattern + U"/" + repl + U"}";
        try {
          return shell_pattern::replace(pattern, v.value_or(U""), repl, all,
                                        shell_pattern::Limits{budget_, opt_.max_word});
        } catch (const shell_pattern::PatternError& e) {
          throw Fail{"invalid pattern (" + unicode::encode(pattern) + ") in substitution: " + e.what()};
        } catch (const shell_pattern::LimitError& e) {
          throw Fail{e.what()};
        }
      }
      default:
        if (c == kEof) throw Fail{"syntax error: missing '}'"};
        throw Fail{"unsupported modifier (" + unicode::encode(chs) + ") in substitution"};
    }
  }

  std::u32string src_;
  const ShellWordsOptions& opt_;
  const EnvLookup& env_;
  ExpandResult& res_;
  ExpansionBudget& budget_;
  std::size_t pos_ = 0;
  bool raw_escapes_;
  int depth_ = 0;
};

}  // namespace

EnvLookup env_lookup(const std::vector<std::pair<std::string, std::string>>& env) {
  return [&env](std::string_view name) -> std::optional<std::string> {
    for (auto it = env.rbegin(); it != env.rend(); ++it)
      if (it->first == name) return it->second;
    return std::nullopt;
  };
}

EnvLookup env_lookup(const std::map<std::string, std::string>& env) {
  return [&env](std::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

ExpandResult ShellWords::expand(std::string_view text, const EnvLookup& env) const {
  ExpandResult res;
  ExpansionBudget own;
  try {
    Lexer(unicode::decode_all(text), options_, env, res, options_.budget ? *options_.budget : own).run();
  } catch (const Fail& f) {
    // A long word (a heredoc) is shown by its start only.
    std::string shown = text.size() > 256 ? quote(text.substr(0, 200)) + "…" : quote(text);
    throw Error(ErrorKind::InvalidArgument, "failed to process " + shown + ": " + f.reason);
  }
  return res;
}

std::string ShellWords::process_word(std::string_view text, const EnvLookup& env) const {
  return expand(text, env).word;
}

std::vector<std::string> ShellWords::process_words(std::string_view text, const EnvLookup& env) const {
  return expand(text, env).words;
}

}  // namespace cbuild::builder::dockerfile
