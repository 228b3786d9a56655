#include "builder/dockerfile/ast.h"

#include "builder/dockerfile/unicode.h"

namespace cbuild::builder::dockerfile {

std::string Node::lower_keyword() const {
  std::string k = keyword;
  for (char& c : k)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return k;
}

std::string go_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    std::size_t w;
    char32_t c = unicode::decode(s, i, w);
    if (c == 0xFFFD && w == 1) {  // an invalid byte (a real U+FFFD has width 3)
      auto b = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 15];
      i += 1;
      continue;
    }
    i += w;
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\a': out += "\\a"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\v': out += "\\v"; continue;
      default: break;
    }
    if (unicode::is_print(c)) {
      unicode::append(out, c);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else if (c < 0x10000) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(c >> shift) & 15];
    } else {
      out += "\\U";
      for (int shift = 28; shift >= 0; shift -= 4) out += kHex[(c >> shift) & 15];
    }
  }
  out += '"';
  return out;
}

std::string go_quote_rune(std::int64_t value) {
  char32_t c = value < 0 || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF) ? char32_t{0xFFFD}
                                                                                     : static_cast<char32_t>(value);
  std::string out;
  if (c == '\'') {
    out = "\\'";
  } else if (c == '"') {
    out = "\"";  // a double quote needs no escape in a rune literal
  } else {
    std::string utf8;
    unicode::append(utf8, c);
    out = go_quote(utf8);  // the same escapes as in a string
    out = out.substr(1, out.size() - 2);
  }
  return "'" + out + "'";
}

std::string dump(const Node& node) {
  std::string out = node.lower_keyword();
  if (!node.flags.empty()) {
    out += " [";
    for (std::size_t i = 0; i < node.flags.size(); ++i) {
      if (i) out += ' ';
      out += go_quote(node.flags[i]);
    }
    out += ']';
  }
  for (const Node& sub : node.sub) out += " (" + dump(sub) + ")";
  for (const std::string& a : node.args) out += " " + go_quote(a);
  // BuildKit trims the result; only a keyword-less node can have leading space.
  auto b = out.find_first_not_of(' ');
  return b == std::string::npos ? std::string() : out.substr(b);
}

std::string dump(const ParsedDockerfile& tree) {
  std::string out;
  for (const Node& n : tree.instructions) out += "(" + dump(n) + ")\n";
  return out;
}

}  // namespace cbuild::builder::dockerfile
