#include "registry-client/auth_challenge.h"

#include <cctype>

namespace cbuild::registry {

namespace {

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  void bump() { ++i_; }
  std::size_t pos() const { return i_; }
  void seek(std::size_t p) { i_ = p; }
  std::string token() {
    std::size_t b = i_;
    while (i_ < s_.size() && is_token_char(s_[i_])) ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  // A quoted-string (with \-escapes) or a token.
  std::string value() {
    if (peek() != '"') {
      std::size_t b = i_;
      while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != ' ' && s_[i_] != '\t') ++i_;
      return std::string(s_.substr(b, i_ - b));
    }
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out += s_[i_++];
    }
    if (i_ < s_.size()) ++i_;  // closing quote
    return out;
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::string AuthChallenge::param(std::string_view key) const {
  auto it = params.find(lower(key));
  return it == params.end() ? std::string{} : it->second;
}

std::vector<AuthChallenge> parse_www_authenticate(std::string_view header) {
  std::vector<AuthChallenge> out;
  Scanner sc(header);
  while (true) {
    sc.skip_ws();
    while (sc.peek() == ',') { sc.bump(); sc.skip_ws(); }
    if (sc.at_end()) break;
    std::string scheme = sc.token();
    if (scheme.empty()) { sc.bump(); continue; }  // garbage: skip one char
    AuthChallenge ch{lower(scheme), {}};
    // auth-params: name=value pairs separated by commas, until the next scheme token.
    while (true) {
      sc.skip_ws();
      while (sc.peek() == ',') { sc.bump(); sc.skip_ws(); }
      if (sc.at_end()) break;
      std::size_t mark = sc.pos();
      std::string name = sc.token();
      sc.skip_ws();
      if (name.empty() || sc.peek() != '=') {
        sc.seek(mark);  // start of the next challenge
        if (name.empty()) sc.bump();
        break;
      }
      sc.bump();
      sc.skip_ws();
      ch.params[lower(name)] = sc.value();
    }
    out.push_back(std::move(ch));
  }
  return out;
}

std::optional<AuthChallenge> pick_challenge(const std::vector<std::string>& header_values) {
  std::optional<AuthChallenge> basic;
  for (const auto& h : header_values) {
    for (auto& c : parse_www_authenticate(h)) {
      if (c.scheme == "bearer") return c;
      if (c.scheme == "basic" && !basic) basic = c;
    }
  }
  return basic;
}

}  // namespace cbuild::registry
