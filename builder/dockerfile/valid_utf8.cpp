#include "builder/dockerfile/valid_utf8.h"

#include "builder/dockerfile/unicode.h"

namespace cbuild::builder {

namespace {

bool is_valid(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t w = 0;
    dockerfile::unicode::decode(s, i, w);  // only the width tells validity; the code point is not needed
    if (w == 1) return false;  // a non-ASCII byte that starts no valid sequence
    i += w;
  }
  return true;
}

void fix(nlohmann::json& j) {
  if (j.is_string()) {
    auto& s = j.get_ref<std::string&>();
    if (!is_valid(s)) s = valid_utf8(s);
  } else if (j.is_array()) {
    for (auto& e : j) fix(e);
  } else if (j.is_object()) {
    bool keys_ok = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      keys_ok = keys_ok && is_valid(it.key());
      fix(it.value());
    }
    if (!keys_ok) {
      // Keys are rewritten by rebuilding the object; a later key that becomes equal wins
      // (json.Marshal of a Go map cannot have both either).
      nlohmann::json o = nlohmann::json::object();
      for (auto it = j.begin(); it != j.end(); ++it) o[valid_utf8(it.key())] = std::move(it.value());
      j = std::move(o);
    }
  }
}

}  // namespace

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t w = 0;
    dockerfile::unicode::append(out, dockerfile::unicode::decode(s, i, w));
    i += w;
  }
  return out;
}

nlohmann::json with_valid_utf8(nlohmann::json doc) {
  fix(doc);
  return doc;
}

}  // namespace cbuild::builder
