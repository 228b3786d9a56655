// Mirrors BuildKit's parser.Parse line loop (see parser.h); the comments name the BuildKit
// quirks that the conformance data depends on.
#include "builder/dockerfile/parser.h"

#include <optional>
#include <set>

#include "builder/dockerfile/json_array.h"
#include "builder/dockerfile/shell_words.h"
#include "builder/dockerfile/unicode.h"

namespace cbuild::builder::dockerfile {

namespace {

constexpr int kMaxOnbuildDepth = 16;

bool is_ascii_ws(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

std::string_view trim_newline(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

bool is_comment(std::string_view s) {
  s = unicode::trim_left_space(s);
  return !s.empty() && s[0] == '#';
}

// Splits at the first run of [ \t\v\f\r] (Go's reWhitespace.Split(s, 2)).
std::pair<std::string_view, std::optional<std::string_view>> split_ws2(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && !is_ascii_ws(s[i])) ++i;
  if (i == s.size()) return {s, std::nullopt};
  std::size_t j = i;
  while (j < s.size() && is_ascii_ws(s[j])) ++j;
  return {s.substr(0, i), s.substr(j)};
}

std::vector<std::string> split_ws_all(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  for (;;) {
    std::size_t j = i;
    while (j < s.size() && !is_ascii_ws(s[j])) ++j;
    out.emplace_back(s.substr(i, j - i));
    if (j == s.size()) break;
    while (j < s.size() && is_ascii_ws(s[j])) ++j;
    i = j;
  }
  return out;
}

struct ParseFail {
  std::string message;
};

// Removes a trailing continuation (E, optional blanks) when the character before E is not
// E, or the whole line is E + blanks. Returns true when the line continues.
bool trim_continuation(std::string_view& line, char esc) {
  std::size_t e = line.size();
  while (e > 0 && (line[e - 1] == ' ' || line[e - 1] == '\t')) --e;
  if (e == 0 || line[e - 1] != esc) return false;
  if (e == 1) {
    line = line.substr(0, 0);
    return true;
  }
  if (line[e - 2] == esc) return false;
  line = line.substr(0, e - 1);
  return true;
}

// Reads the leading --flags (conformance README §2.6). Bytes are widened to runes as in Go.
std::string_view extract_flags(std::string_view line, char esc, std::vector<std::string>& flags) {
  enum { Spaces, Word, Quote } phase = Spaces;
  std::string word;
  char quote = 0;
  bool blank_ok = false;
  auto add = [&word](unsigned char b) { unicode::append(word, static_cast<char32_t>(b)); };
  for (std::size_t pos = 0; pos <= line.size(); ++pos) {
    unsigned char ch = pos < line.size() ? static_cast<unsigned char>(line[pos]) : 0;
    if (phase == Spaces) {
      if (pos == line.size()) break;
      if (unicode::is_space_byte(ch)) continue;
      if (ch != '-' || pos + 1 == line.size() || line[pos + 1] != '-') return line.substr(pos);
      phase = Word;
    }
    if (pos == line.size()) {
      if (word != "--" && (blank_ok || !word.empty())) flags.push_back(word);
      break;
    }
    if (phase == Word) {
      if (unicode::is_space_byte(ch)) {
        phase = Spaces;
        if (word == "--") return line.substr(pos);
        if (blank_ok || !word.empty()) flags.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = static_cast<char>(ch);
        blank_ok = true;
        phase = Quote;
        continue;
      }
      if (ch == static_cast<unsigned char>(esc)) {
        if (pos + 1 == line.size()) continue;
        ch = static_cast<unsigned char>(line[++pos]);
      }
      add(ch);
      continue;
    }
    // Quote
    if (ch == static_cast<unsigned char>(quote)) {
      phase = Word;
      continue;
    }
    if (ch == static_cast<unsigned char>(esc)) {
      if (pos + 1 == line.size()) {
        phase = Word;
        continue;
      }
      ch = static_cast<unsigned char>(line[++pos]);
    }
    add(ch);
  }
  return line.substr(line.size());
}

// The quote-aware splitter of ENV/LABEL/ARG (BuildKit's parseWords): quotes and escapes kept.
std::vector<std::string> parse_words(std::string_view rest, char esc) {
  enum { Spaces, Word, Quote } phase = Spaces;
  std::vector<std::string> words;
  std::string word;
  char32_t quote = 0;
  bool blank_ok = false;
  std::size_t width = 0;
  char32_t ch = 0;
  for (std::size_t pos = 0; pos <= rest.size(); pos += width) {
    if (pos != rest.size()) ch = unicode::decode(rest, pos, width);
    if (phase == Spaces) {
      if (pos == rest.size()) break;
      if (unicode::is_space(ch)) continue;
      phase = Word;
    }
    if (pos == rest.size()) {
      if (blank_ok || !word.empty()) words.push_back(word);
      break;
    }
    if (phase == Word) {
      if (unicode::is_space(ch)) {
        phase = Spaces;
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = Quote;
      }
      if (ch == static_cast<char32_t>(esc)) {
        if (pos + width == rest.size()) continue;
        unicode::append(word, ch);
        pos += width;
        ch = unicode::decode(rest, pos, width);
      }
      unicode::append(word, ch);
      continue;
    }
    if (ch == quote) phase = Word;
    if (ch == static_cast<char32_t>(esc) && quote != '\'') {
      if (pos + width == rest.size()) {
        phase = Word;
        continue;
      }
      pos += width;
      unicode::append(word, ch);
      ch = unicode::decode(rest, pos, width);
    }
    unicode::append(word, ch);
  }
  return words;
}

void parse_maybe_json(std::string_view rest, Node& n, bool to_list) {
  if (rest.empty()) return;
  std::string_view t = unicode::trim_left_space(rest);
  if (!t.empty() && t[0] == '[') {
    JsonArray j = parse_json_string_array(t);
    if (j.status == JsonArrayStatus::NotStringArray)
      throw ParseFail{n.keyword + ": the JSON array must contain only strings"};
    if (j.status == JsonArrayStatus::Ok) {
      n.args = std::move(j.items);
      n.json = true;
      return;
    }
  }
  if (to_list) {
    n.args = split_ws_all(rest);
  } else {
    n.args.emplace_back(rest);
  }
}

void parse_name_val(std::string_view rest, Node& n, const char* key, char esc) {
  std::vector<std::string> words = parse_words(rest, esc);
  if (words.empty()) return;
  if (words[0].find('=') == std::string::npos) {
    auto [k, v] = split_ws2(rest);
    if (!v) throw ParseFail{std::string(key) + " must have two arguments"};
    n.args = {std::string(k), std::string(*v), ""};
    return;
  }
  for (const std::string& w : words) {
    auto eq = w.find('=');
    if (eq == std::string::npos)
      throw ParseFail{"Syntax error - can't find = in " + go_quote(w) + ". Must be of the form: name=value"};
    n.args.push_back(w.substr(0, eq));
    n.args.push_back(w.substr(eq + 1));
    n.args.emplace_back("=");
  }
}

Node node_from_line(std::string_view line, char esc, int depth) {
  Node n;
  n.original = std::string(line);
  auto [cmd, rest_opt] = split_ws2(unicode::trim_space(line));
  n.keyword = std::string(cmd);
  std::string_view args;
  if (rest_opt) args = unicode::trim_space(extract_flags(*rest_opt, esc, n.flags));
  std::string k = n.lower_keyword();
  if (k == "add" || k == "copy" || k == "volume") {
    parse_maybe_json(args, n, true);
  } else if (k == "run" || k == "cmd" || k == "entrypoint" || k == "shell") {
    parse_maybe_json(args, n, false);
  } else if (k == "from" || k == "expose") {
    if (!args.empty()) n.args = split_ws_all(args);
  } else if (k == "env" || k == "label") {
    parse_name_val(args, n, k == "env" ? "ENV" : "LABEL", esc);
  } else if (k == "arg") {
    n.args = parse_words(args, esc);
  } else if (k == "maintainer" || k == "user" || k == "workdir" || k == "stopsignal") {
    if (!args.empty()) n.args.emplace_back(args);
  } else if (k == "healthcheck") {
    std::size_t sep = 0;
    while (sep < args.size() && !unicode::is_space_byte(static_cast<unsigned char>(args[sep]))) ++sep;
    std::size_t next = sep;
    while (next < args.size() && unicode::is_space_byte(static_cast<unsigned char>(args[next]))) ++next;
    if (sep > 0) {
      Node cmdnode;
      cmdnode.keyword = n.keyword;
      parse_maybe_json(args.substr(next), cmdnode, false);
      n.args.emplace_back(args.substr(0, sep));
      for (auto& a : cmdnode.args) n.args.push_back(std::move(a));
      n.json = cmdnode.json;
    }
  } else if (k == "onbuild") {
    if (!args.empty()) {
      if (depth >= kMaxOnbuildDepth) throw ParseFail{"ONBUILD nested too deeply"};
      n.sub.push_back(node_from_line(args, esc, depth + 1));
    }
  } else {
    n.args.emplace_back();  // unknown instruction: BuildKit keeps one empty node
  }
  return n;
}

bool can_contain_heredoc(const Node& n) {
  const Node* t = &n;
  if (n.lower_keyword() == "onbuild" && !n.sub.empty()) t = &n.sub[0];
  std::string k = t->lower_keyword();
  return (k == "run" || k == "copy" || k == "add") && !t->json;
}

std::optional<Heredoc> parse_heredoc_word(const std::string& src) {
  // ^(\d*)<<(-?)([^<]*)$
  std::size_t i = 0;
  while (i < src.size() && src[i] >= '0' && src[i] <= '9') ++i;
  if (src.compare(i, 2, "<<") != 0) return std::nullopt;
  std::string digits = src.substr(0, i);
  i += 2;
  bool chomp = i < src.size() && src[i] == '-';
  if (chomp) ++i;
  std::string rest = src.substr(i);
  if (rest.find('<') != std::string::npos || rest.empty()) return std::nullopt;
  ShellWordsOptions o;
  o.skip_unset_env = true;
  EnvLookup none = [](std::string_view) { return std::optional<std::string>(); };
  std::vector<std::string> words = ShellWords(o).process_words(rest, none);
  if (words.size() != 1) return std::nullopt;
  o.raw_quotes = true;
  std::vector<std::string> raw = ShellWords(o).process_words(rest, none);
  if (raw.size() != 1) throw ParseFail{"internal lexing of heredoc produced inconsistent results: " + rest};
  auto count = [](const std::string& s) {
    std::size_t c = 0;
    for (char ch : s) c += ch == '\'' || ch == '"';
    return c;
  };
  Heredoc h;
  h.name = words[0];
  h.expand = count(words[0]) == count(raw[0]);
  h.chomp = chomp;
  unsigned long fd = 0;
  for (char d : digits) fd = fd > 100000 ? fd : fd * 10 + static_cast<unsigned long>(d - '0');
  h.fd = static_cast<unsigned>(fd);
  return h;
}

std::vector<Heredoc> heredocs_from_line(std::string_view line) {
  ShellWordsOptions o;
  o.raw_quotes = true;
  o.raw_escapes = true;
  std::vector<std::string> words;
  try {
    words = ShellWords(o).process_words(line, [](std::string_view) { return std::optional<std::string>(); });
  } catch (const Error&) {
    return {};  // BuildKit ignores lexing errors here: no heredocs
  }
  std::vector<Heredoc> out;
  for (const std::string& w : words) {
    try {
      if (auto h = parse_heredoc_word(w)) out.push_back(std::move(*h));
    } catch (const Error& e) {
      throw ParseFail{e.message()};
    }
  }
  return out;
}

class DirectiveScanner {
 public:
  explicit DirectiveScanner(Directives& d) : d_(d) {}
  void line(std::string_view s) {
    if (done_) return;
    std::string name, value;
    if (!parse_directive_line(s, name, value) || (name != "syntax" && name != "escape" && name != "check")) {
      done_ = true;
      return;
    }
    if (!seen_.insert(name).second) throw ParseFail{"only one " + name + " parser directive can be used"};
    if (name == "escape") {
      if (value != "`" && value != "\\")
        throw ParseFail{"invalid escape token '" + value + "' does not match ` or \\"};
      d_.escape = value[0];
    } else if (name == "syntax") {
      d_.syntax = value;
    } else {
      d_.check = value;
    }
  }

 private:
  Directives& d_;
  bool done_ = false;
  std::set<std::string> seen_;
};

}  // namespace

bool parse_directive_line(std::string_view line, std::string& name, std::string& value) {
  // ^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$ with Go's \s = [\t\n\f\r ]
  auto sp = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; };
  std::size_t i = 0;
  if (line.empty() || line[0] != '#') return false;
  ++i;
  while (i < line.size() && sp(line[i])) ++i;
  std::size_t ns = i;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (i >= line.size() || !alpha(line[i])) return false;
  while (i < line.size() && (alpha(line[i]) || (line[i] >= '0' && line[i] <= '9'))) ++i;
  std::string n(line.substr(ns, i - ns));
  while (i < line.size() && sp(line[i])) ++i;
  if (i >= line.size() || line[i] != '=') return false;
  ++i;
  while (i < line.size() && sp(line[i])) ++i;
  std::size_t end = line.size();
  while (end > i && sp(line[end - 1])) --end;
  if (end <= i) return false;
  if (line.substr(i, end - i).find('\n') != std::string_view::npos) return false;
  for (char& c : n)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  name = std::move(n);
  value = std::string(line.substr(i, end - i));
  return true;
}

ParsedDockerfile parse(std::string_view text, std::string_view file_name) {
  ParsedDockerfile out;
  out.file = std::string(file_name);
  // Physical lines, each with its "\n" (BuildKit's scanLines).
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t nl = text.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    std::size_t content = (nl == std::string_view::npos ? text.size() : nl) - pos;
    if (content > kMaxLineLength)
      throw DockerfileError(out.file, static_cast<int>(lines.size()) + 1,
                            "dockerfile line greater than max allowed size of " + std::to_string(kMaxLineLength));
    // A NUL would silently end the text wherever it reaches a C string (an argv, a path).
    if (text.substr(pos, content).find('\0') != std::string_view::npos)
      throw DockerfileError(out.file, static_cast<int>(lines.size()) + 1,
                            "the line contains a NUL byte (not allowed in a Dockerfile)");
    lines.push_back(text.substr(pos, end - pos));
    pos = end;
  }

  DirectiveScanner directives(out.directives);
  std::size_t next = 0;  // index of the next physical line to scan
  int current = 0;       // physical lines consumed so far
  auto fail = [&](int line, const std::string& msg) { throw DockerfileError(out.file, line, msg); };

  while (next < lines.size()) {
    std::string_view raw = lines[next++];
    if (current == 0 && raw.substr(0, 3) == "\xEF\xBB\xBF") raw.remove_prefix(3);
    std::string_view token = unicode::trim_left_space(trim_newline(raw));
    try {
      directives.line(token);
    } catch (const ParseFail& f) {
      fail(current + 1, f.message);
    }
    if (is_comment(token)) token = token.substr(0, 0);
    ++current;
    const int start = current;
    const char esc = out.directives.escape;
    std::string_view first = token;
    bool continues = trim_continuation(first, esc);
    if (!continues && first.empty()) continue;

    std::string buf(first);
    int empty_lines = 0;
    while (continues && next < lines.size()) {
      std::string_view r = lines[next++];
      std::string_view t = trim_newline(r);
      try {
        directives.line(t);
      } catch (const ParseFail& f) {
        fail(current + 1, f.message);
      }
      ++current;
      if (is_comment(r)) continue;
      if (unicode::trim_left_space(t).empty()) {
        ++empty_lines;
        continue;
      }
      continues = trim_continuation(t, esc);
      buf += t;
    }
    if (empty_lines > 0)
      out.warnings.push_back({out.file, current, "Empty continuation line found in: " + std::string(first)});

    Node node;
    try {
      node = node_from_line(buf, esc, 0);
    } catch (const ParseFail& f) {
      fail(start, f.message);
    }
    if (can_contain_heredoc(node) && first.find("<<") != std::string_view::npos) {
      std::vector<Heredoc> docs;
      try {
        docs = heredocs_from_line(first);
      } catch (const ParseFail& f) {
        fail(start, f.message);
      }
      for (Heredoc& h : docs) {
        bool terminated = false;
        while (next < lines.size()) {
          std::string_view r = lines[next++];
          ++current;
          std::string_view term = trim_newline(r);
          if (h.chomp) {
            while (!term.empty() && term[0] == '\t') term.remove_prefix(1);
          }
          if (term == h.name) {
            terminated = true;
            break;
          }
          h.content += r;
        }
        if (!terminated) fail(start, node.keyword + ": unterminated heredoc " + go_quote(h.name));
        node.heredocs.push_back(std::move(h));
      }
    }
    node.range = {start, current};
    if (out.instructions.empty()) out.range.start_line = start;
    out.range.end_line = current;
    out.instructions.push_back(std::move(node));
  }
  if (out.instructions.empty()) fail(0, "file with no instructions");
  return out;
}

std::optional<Heredoc> heredoc_word(const std::string& word) {
  try {
    return parse_heredoc_word(word);
  } catch (const ParseFail&) {
    return std::nullopt;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace cbuild::builder::dockerfile
