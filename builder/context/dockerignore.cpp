// Pattern compilation follows patternmatcher's Pattern.compile: a pattern becomes an exact,
// prefix, suffix or "regexp" matcher; the regexp subset that can occur (literals, [^/]*,
// [^/], (.*/)?, .*, and bracket classes) is matched here directly, with memoisation.
#include "builder/dockerfile/unicode.h"
#include "builder/context/dockerignore.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace cbuild::builder {

namespace du = dockerfile::unicode;

namespace {

struct ClassRange {
  char32_t lo, hi;
};

struct Tok {
  enum Kind { Lit, NotSlashStar, NotSlash, DirStar, AnyStar, Class } kind;
  char32_t c = 0;
  bool negated = false;
  std::vector<ClassRange> ranges;
};

Tok mk(Tok::Kind k, char32_t c = 0) {
  Tok t;
  t.kind = k;
  t.c = c;
  return t;
}

enum class MatchType { Exact, Prefix, Suffix, Regexp };

struct Pattern {
  std::string cleaned;
  bool exception = false;
  MatchType type = MatchType::Exact;
  std::vector<Tok> toks;
  std::size_t dirs = 1;  // path components of `cleaned`
};

struct Bad {
  std::string why;
};

// Parses a bracket class starting after '['; returns index after ']'.
std::size_t parse_class(const std::u32string& p, std::size_t i, Tok& t) {
  t.kind = Tok::Class;
  if (i < p.size() && p[i] == '^') {
    t.negated = true;
    ++i;
  }
  bool first = true;
  while (i < p.size() && (p[i] != ']' || first)) {
    first = false;
    char32_t lo = p[i];
    if (lo == '\\') {
      if (++i >= p.size()) throw Bad{"unterminated character class"};
      lo = p[i];
    }
    ++i;
    char32_t hi = lo;
    if (i + 1 < p.size() && p[i] == '-' && p[i + 1] != ']') {
      hi = p[i + 1];
      i += 2;
      if (hi == '\\') {
        if (i >= p.size()) throw Bad{"unterminated character class"};
        hi = p[i++];
      }
      if (hi < lo) throw Bad{"invalid character class range"};
    }
    t.ranges.push_back({lo, hi});
  }
  if (i >= p.size()) throw Bad{"unterminated character class"};
  return i + 1;  // past ']'
}

// Docker's client (20.10) turns an ignore-file pattern into a Go regexp escaping only `.` and
// `$`: any other regexp syntax in the pattern is live there. What that would make an operator
// (`+`, `(`, `|`, a `{n}` repeat, `^`, a `\d`-style escape, a `[:alpha:]` class) is refused
// here rather than read literally.
void check_no_regexp(const std::u32string& p) {
  auto refuse = [](const std::u32string& what, const char* as) {
    return Bad{"docker build reads \"" + du::encode(what) + "\" in it as " + as + "; cbuild does not"};
  };
  bool in_class = false, class_start = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char32_t c = p[i];
    bool was_start = class_start;
    class_start = false;
    if (c == '\\') {
      if (i + 1 < p.size()) {
        char32_t n = p[++i];
        if (n < 0x80 && std::isalnum(static_cast<int>(n)))
          throw refuse(std::u32string{'\\', n}, "a regular-expression escape");
      }
      continue;
    }
    if (in_class) {
      if (c == ']' && !was_start) in_class = false;
      else if (c == '[' && i + 1 < p.size() && (p[i + 1] == ':' || p[i + 1] == '=' || p[i + 1] == '.'))
        throw refuse(std::u32string{'[', p[i + 1]}, "regular-expression class syntax");
      continue;
    }
    if (c == '[') {
      in_class = class_start = true;
      if (i + 1 < p.size() && p[i + 1] == '^') ++i, class_start = true;
      continue;
    }
    bool repeat = false;
    if (c == '{') {
      std::size_t j = i + 1;
      while (j < p.size() && p[j] >= '0' && p[j] <= '9') ++j;
      bool digits = j > i + 1;
      if (digits && j < p.size() && p[j] == ',') {
        ++j;
        while (j < p.size() && p[j] >= '0' && p[j] <= '9') ++j;
      }
      repeat = digits && j < p.size() && p[j] == '}';
    }
    if (c == '+' || c == '(' || c == ')' || c == '|' || c == '^' || repeat)
      throw refuse(std::u32string(1, c), "a regular-expression operator");
  }
}

Pattern compile(std::string cleaned, bool exception, bool ignore_file) {
  Pattern pat;
  pat.cleaned = cleaned;
  pat.exception = exception;
  pat.dirs = static_cast<std::size_t>(std::count(cleaned.begin(), cleaned.end(), '/')) + 1;
  std::u32string p = du::decode_all(cleaned);
  if (ignore_file) check_no_regexp(p);
  MatchType type = MatchType::Exact;
  for (std::size_t i = 0, n = 0; i < p.size(); ++n) {
    char32_t ch = p[i++];
    if (ch == '*') {
      if (i < p.size() && p[i] == '*') {
        ++i;
        if (i < p.size() && p[i] == '/') ++i;
        if (i >= p.size()) {
          if (type == MatchType::Exact) {
            type = MatchType::Prefix;
          } else {
            pat.toks.push_back(mk(Tok::AnyStar));
            type = MatchType::Regexp;
          }
        } else {
          pat.toks.push_back(mk(Tok::DirStar));
          type = MatchType::Regexp;
        }
        // patternmatcher's suffix shortcut ("**foo" matches "xfoo"); docker 20.10's regexp
        // (what an ignore file gets) has "**foo" match "foo" and "a/foo" only.
        if (n == 0 && !ignore_file) type = MatchType::Suffix;
      } else {
        pat.toks.push_back(mk(Tok::NotSlashStar));
        type = MatchType::Regexp;
      }
    } else if (ch == '?') {
      pat.toks.push_back(mk(Tok::NotSlash));
      type = MatchType::Regexp;
    } else if (ch == '\\') {
      if (i < p.size()) {
        pat.toks.push_back(mk(Tok::Lit, p[i++]));
        type = MatchType::Regexp;
      } else {
        pat.toks.push_back(mk(Tok::Lit, '\\'));
      }
    } else if (ch == '[') {
      Tok t = mk(Tok::Class);
      i = parse_class(p, i, t);
      pat.toks.push_back(std::move(t));
      type = MatchType::Regexp;
    } else if (ch == ']') {
      throw Bad{"unexpected ']'"};
    } else {
      pat.toks.push_back(mk(Tok::Lit, ch));
    }
  }
  pat.type = type;
  return pat;
}

class Matcher {
 public:
  Matcher(const std::vector<Tok>& toks, const std::u32string& s) : toks_(toks), s_(s) {
    memo_.assign((toks.size() + 1) * (s.size() + 1), 0);
  }
  bool run() { return match(0, 0); }

 private:
  bool match(std::size_t k, std::size_t i) {
    // Iterate over single-width tokens; recurse (memoised) only at stars.
    while (k < toks_.size()) {
      const Tok& t = toks_[k];
      if (t.kind == Tok::Lit || t.kind == Tok::NotSlash || t.kind == Tok::Class) {
        if (i >= s_.size()) return false;
        char32_t c = s_[i];
        bool ok = t.kind == Tok::Lit ? c == t.c : t.kind == Tok::NotSlash ? c != '/' : in_class(t, c);
        if (!ok) return false;
        ++k, ++i;
        continue;
      }
      std::uint8_t& m = memo_[k * (s_.size() + 1) + i];
      if (m) return m == 2;
      bool r = false;
      if (t.kind == Tok::NotSlashStar || t.kind == Tok::AnyStar) {
        for (std::size_t e = i;; ++e) {
          if (match(k + 1, e)) {
            r = true;
            break;
          }
          if (e >= s_.size() || s_[e] == '\n' || (t.kind == Tok::NotSlashStar && s_[e] == '/')) break;
        }
      } else {  // DirStar: (.*/)?
        r = match(k + 1, i);
        for (std::size_t e = i; !r && e < s_.size() && s_[e] != '\n'; ++e)
          if (s_[e] == '/') r = match(k + 1, e + 1);
      }
      m = r ? 2 : 1;
      return r;
    }
    return i == s_.size();
  }

  static bool in_class(const Tok& t, char32_t c) {
    bool in = false;
    for (const auto& r : t.ranges)
      if (c >= r.lo && c <= r.hi) in = true;
    return in != t.negated;
  }

  const std::vector<Tok>& toks_;
  const std::u32string& s_;
  std::vector<std::uint8_t> memo_;
};

bool pattern_matches(const Pattern& p, const std::string& path) {
  switch (p.type) {
    case MatchType::Exact:
      return path == p.cleaned;
    case MatchType::Prefix:
      return path.compare(0, p.cleaned.size() - 2, p.cleaned, 0, p.cleaned.size() - 2) == 0;
    case MatchType::Suffix: {
      std::string suffix = p.cleaned.substr(2);
      if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
      return !suffix.empty() && suffix[0] == '/' && path == suffix.substr(1);
    }
    case MatchType::Regexp: {
      std::u32string s = du::decode_all(path);
      return Matcher(p.toks, s).run();
    }
  }
  return false;
}

}  // namespace

std::string clean_path(std::string_view path) {
  if (path.empty()) return ".";
  bool rooted = path[0] == '/';
  std::vector<std::string_view> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    if (c.empty() || c == ".") {
    } else if (c == "..") {
      if (!parts.empty() && parts.back() != "..") parts.pop_back();
      else if (!rooted) parts.push_back(c);
    } else {
      parts.push_back(c);
    }
    i = j + 1;
  }
  std::string out = rooted ? "/" : "";
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (k) out += '/';
    out += parts[k];
  }
  return out.empty() ? "." : out;
}

struct DockerIgnore::Impl {
  std::vector<Pattern> patterns;  // in file order
  std::vector<std::string> texts;
  std::string source;
  bool exceptions = false;
};

DockerIgnore::DockerIgnore() : impl_(std::make_shared<Impl>()) {}
DockerIgnore::~DockerIgnore() = default;
DockerIgnore::DockerIgnore(DockerIgnore&&) noexcept = default;
DockerIgnore& DockerIgnore::operator=(DockerIgnore&&) noexcept = default;
DockerIgnore::DockerIgnore(const DockerIgnore&) = default;
DockerIgnore& DockerIgnore::operator=(const DockerIgnore&) = default;

DockerIgnore DockerIgnore::parse(std::string_view text, std::string_view source, Syntax syntax) {
  auto impl = std::make_shared<Impl>();
  impl->source = std::string(source);
  std::size_t pos = 0;
  int line_no = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (line_no++ == 0 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    if (!line.empty() && line[0] == '#') continue;
    std::string p(du::trim_space(line));
    if (p.empty()) continue;
    bool invert = p[0] == '!';
    if (invert) p = std::string(du::trim_space(std::string_view(p).substr(1)));
    if (!p.empty()) {
      p = clean_path(p);
      if (p.size() > 1 && p[0] == '/') p.erase(0, 1);
    }
    if (invert && p.empty())
      throw Error(ErrorKind::InvalidArgument, std::string(source) + ":" + std::to_string(line_no) +
                                                  ": illegal exclusion pattern: \"!\"");
    impl->texts.push_back((invert ? "!" : "") + p);
    std::string cleaned = clean_path(p);
    if (cleaned == ".") cleaned = ".";
    try {
      impl->patterns.push_back(compile(cleaned, invert, syntax == Syntax::IgnoreFile));
    } catch (const Bad& b) {
      throw Error(ErrorKind::InvalidArgument,
                  std::string(source) + ":" + std::to_string(line_no) + ": bad pattern " + quote(p) + ": " + b.why);
    }
    impl->exceptions = impl->exceptions || invert;
  }
  DockerIgnore d;
  d.impl_ = std::move(impl);
  return d;
}

DockerIgnore DockerIgnore::load(const std::filesystem::path& context_dir, const std::filesystem::path& dockerfile) {
  if (!dockerfile.empty()) {
    std::filesystem::path beside = dockerfile;
    beside += ".dockerignore";
    if (auto text = read_file_if_exists(beside, 16u << 20)) return parse(*text, beside.string());
  }
  std::filesystem::path p = context_dir / ".dockerignore";
  if (auto text = read_file_if_exists(p, 16u << 20)) return parse(*text, p.string());
  return DockerIgnore();
}

bool DockerIgnore::excluded(std::string_view raw) const {
  if (impl_->patterns.empty()) return false;
  std::string file = clean_path(raw);
  while (file.size() > 1 && file[0] == '/') file.erase(0, 1);
  if (file == "/") file = ".";
  // Parent directories, as filepath.Dir + Split.
  auto slash = file.rfind('/');
  std::string parent = slash == std::string::npos ? "." : file.substr(0, slash);
  bool matched = false;
  for (const Pattern& p : impl_->patterns) {
    if (p.exception != matched) continue;
    bool m = pattern_matches(p, file);
    if (!m && parent != ".") {
      for (std::size_t i = 0; !m; ) {
        std::size_t j = parent.find('/', i);
        m = pattern_matches(p, parent.substr(0, j));
        if (j == std::string::npos) break;
        i = j + 1;
      }
    }
    if (m) matched = !p.exception;
  }
  return matched;
}

// docker 20.10's client walks the context with fsutil's walker of that time, which asks
// fileutils' PatternMatcher.Matches of every path: like MatchesOrParentMatches, except that
// the only parent it tries is the one with as many components as the pattern.
bool DockerIgnore::matches_as_docker_client(std::string_view file) const {
  // filepath.Dir(file) has as many components as `file` has slashes.
  auto parent_dirs = static_cast<std::size_t>(std::count(file.begin(), file.end(), '/'));
  std::string path(file);
  bool matched = false;
  for (const Pattern& p : impl_->patterns) {
    if (p.exception != matched) continue;  // cannot change the result
    bool m = pattern_matches(p, path);
    if (!m && parent_dirs > 0 && p.dirs <= parent_dirs) {
      std::size_t end = 0, from = 0;
      for (std::size_t k = 0; k < p.dirs; ++k, from = end + 1) end = path.find('/', from);
      m = pattern_matches(p, path.substr(0, end));  // the first p.dirs components
    }
    if (m) matched = !p.exception;
  }
  return matched;
}

// The walker leaves out a matching directory with everything below it, unless the text of an
// exception pattern starts with the directory's path and a "/": then the directory is sent
// (even if nothing in it ends up kept) and its entries are tested one by one.
bool DockerIgnore::walk_enters(std::string_view dir) const {
  if (!impl_->exceptions) return false;
  std::string dir_slash = std::string(dir) + "/";
  for (const Pattern& p : impl_->patterns)
    if (p.exception && (p.cleaned + "/").compare(0, dir_slash.size(), dir_slash) == 0) return true;
  return false;
}

namespace {

std::string relative_clean(std::string_view raw) {
  std::string file = clean_path(raw);
  while (!file.empty() && file[0] == '/') file.erase(0, 1);
  return file == "." ? std::string() : file;
}

}  // namespace

DockerIgnore::Verdict DockerIgnore::entry_verdict(std::string_view raw) const {
  if (impl_->patterns.empty()) return Verdict::Sent;
  std::string file = relative_clean(raw);
  if (file.empty() || !matches_as_docker_client(file)) return Verdict::Sent;
  return walk_enters(file) ? Verdict::SentIfDirectory : Verdict::Excluded;
}

DockerIgnore::Verdict DockerIgnore::context_verdict(std::string_view raw) const {
  if (impl_->patterns.empty()) return Verdict::Sent;
  std::string file = relative_clean(raw);
  if (file.empty()) return Verdict::Sent;
  // Without exceptions every matching directory is skipped whole, which is exactly "the path
  // or a parent matches": one pass instead of one per parent.
  if (!impl_->exceptions) return excluded(file) ? Verdict::Excluded : Verdict::Sent;
  // Every directory on the way was either not matched or entered (else the walk never got here).
  for (std::size_t i = file.find('/'); i != std::string::npos; i = file.find('/', i + 1))
    if (entry_verdict(std::string_view(file.data(), i)) == Verdict::Excluded) return Verdict::Excluded;
  return entry_verdict(file);
}

bool DockerIgnore::has_exceptions() const { return impl_->exceptions; }
const std::vector<std::string>& DockerIgnore::patterns() const { return impl_->texts; }
const std::string& DockerIgnore::source() const { return impl_->source; }

}  // namespace cbuild::builder
