#include "builder/dockerfile/json_array.h"

#include "builder/dockerfile/unicode.h"

namespace cbuild::builder::dockerfile {

namespace {

constexpr std::size_t kMaxDepth = 10000;  // Go's encoding/json nesting limit

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  JsonArray run() {
    JsonArray out;
    skip_ws();
    if (pos_ >= s_.size() || s_[pos_] != '[') return out;
    bool non_string = false;
    // Stack of open containers: '[' or '{'.
    std::string stack;
    stack.push_back('[');
    ++pos_;
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      stack.pop_back();
    } else {
      // Expecting a value inside the top array.
      for (;;) {
        // --- read one value (scalars inline; containers push) ---
        skip_ws();
        bool top_level_item = stack.size() == 1 && stack.back() == '[';
        char c = peek();
        if (c == '"') {
          std::string v;
          if (!string(v)) return {};
          if (top_level_item) out.items.push_back(std::move(v));
        } else if (c == '[' || c == '{') {
          if (top_level_item) non_string = true;
          if (stack.size() + 1 > kMaxDepth) return {};
          stack.push_back(c);
          ++pos_;
          skip_ws();
          if (c == '{') {
            if (peek() == '}') {
              ++pos_;
              stack.pop_back();
            } else {
              std::string key;
              if (peek() != '"' || !string(key)) return {};
              skip_ws();
              if (peek() != ':') return {};
              ++pos_;
              continue;  // read the member value
            }
          } else if (peek() == ']') {
            ++pos_;
            stack.pop_back();
          } else {
            continue;  // read the first element
          }
        } else if (!scalar()) {
          return {};
        } else if (top_level_item) {
          non_string = true;
        }
        // --- after a value: ',' or close, possibly several closes ---
        for (;;) {
          skip_ws();
          if (stack.empty()) break;
          char t = stack.back();
          char d = peek();
          if (d == ',') {
            ++pos_;
            if (t == '{') {
              skip_ws();
              std::string key;
              if (peek() != '"' || !string(key)) return {};
              skip_ws();
              if (peek() != ':') return {};
              ++pos_;
            }
            break;
          }
          if ((t == '[' && d == ']') || (t == '{' && d == '}')) {
            ++pos_;
            stack.pop_back();
            continue;
          }
          return {};
        }
        if (stack.empty()) break;
      }
    }
    skip_ws();
    if (pos_ != s_.size()) return {};
    out.status = non_string ? JsonArrayStatus::NotStringArray : JsonArrayStatus::Ok;
    if (non_string) out.items.clear();
    return out;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= s_.size(); }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool literal(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }

  bool digits() {
    std::size_t start = pos_;
    while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }

  bool scalar() {
    if (at_end()) return false;
    char c = s_[pos_];
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    if (c == '-') ++pos_;
    if (at_end()) return false;
    if (s_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return false;
    }
    if (peek() == '.') {
      ++pos_;
      if (!digits()) return false;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!digits()) return false;
    }
    return true;
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool hex4(std::size_t at, char32_t& v) const {
    if (at + 4 > s_.size()) return false;
    v = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      int h = hex(s_[at + i]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<char32_t>(h);
    }
    return true;
  }

  bool string(std::string& out) {
    ++pos_;  // opening quote
    for (;;) {
      if (at_end()) return false;
      auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++pos_;
        if (at_end()) return false;
        char e = s_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            char32_t v;
            if (!hex4(pos_, v)) return false;
            pos_ += 4;
            if (v >= 0xD800 && v < 0xDC00) {
              char32_t lo;
              if (pos_ + 1 < s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u' && hex4(pos_ + 2, lo) &&
                  lo >= 0xDC00 && lo <= 0xDFFF) {
                pos_ += 6;
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
              } else {
                v = 0xFFFD;
              }
            } else if (v >= 0xDC00 && v <= 0xDFFF) {
              v = 0xFFFD;
            }
            unicode::append(out, v);
            break;
          }
          default:
            return false;
        }
        continue;
      }
      if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      std::size_t w;
      char32_t cp = unicode::decode(s_, pos_, w);
      unicode::append(out, cp);
      pos_ += w;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace

JsonArray parse_json_string_array(std::string_view text) { return Scanner(text).run(); }

}  // namespace cbuild::builder::dockerfile
