#include "builder/dockerfile/unicode.h"

#include <clocale>
#include <cwctype>
#include <locale.h>

namespace cbuild::builder::dockerfile::unicode {

char32_t decode(std::string_view s, std::size_t pos, std::size_t& width) {
  auto b0 = static_cast<unsigned char>(s[pos]);
  width = 1;
  if (b0 < 0x80) return b0;
  std::size_t need;
  char32_t cp;
  char32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0xFFFD;
  }
  if (pos + need >= s.size()) return 0xFFFD;
  for (std::size_t i = 1; i <= need; ++i) {
    auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0xFFFD;
  width = need + 1;
  return cp;
}

std::u32string decode_all(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t w;
    out.push_back(decode(s, i, w));
    i += w;
  }
  return out;
}

void append(std::string& out, char32_t c) {
  if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c <= 0x10FFFF) {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    append(out, 0xFFFD);
  }
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append(out, c);
  return out;
}

bool is_space(char32_t c) {
  switch (c) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F:
    case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {
// The C.UTF-8 locale is built into glibc; without it non-ASCII letters count as non-letters.
locale_t utf8_locale() {
  static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return loc;
}
}  // namespace

bool is_letter(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (c == 0xAA || c == 0xB5 || c == 0xBA) return true;
  locale_t loc = utf8_locale();
  if (loc == static_cast<locale_t>(nullptr)) return false;
  return iswalpha_l(static_cast<wint_t>(c), loc) != 0 && iswdigit_l(static_cast<wint_t>(c), loc) == 0;
}

bool is_digit(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  // Go counts other scripts' decimal digits (Nd) too; the common blocks are covered here.
  static constexpr char32_t kZeros[] = {0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6,
                                        0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090,
                                        0x17E0, 0x1810, 0xFF10};
  for (char32_t z : kZeros)
    if (c >= z && c <= z + 9) return true;
  return false;
}

std::string_view trim_left_space(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t w;
    char32_t c = decode(s, i, w);
    if (!is_space(c)) break;
    i += w;
  }
  return s.substr(i);
}

std::string_view trim_space(std::string_view s) {
  s = trim_left_space(s);
  // Walk back over whole code points; a space code point is always valid UTF-8.
  std::size_t end = s.size();
  while (end > 0) {
    std::size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
    std::size_t w;
    char32_t c = decode(s, start, w);
    if (start + w != end || !is_space(c)) {
      // Either an invalid tail byte or a non-space: stop (single trailing byte check).
      if (start + w != end) {
        unsigned char b = static_cast<unsigned char>(s[end - 1]);
        if (is_space(b) && b < 0x80) {
          --end;
          continue;
        }
      }
      break;
    }
    end = start;
  }
  return s.substr(0, end);
}

}  // namespace cbuild::builder::dockerfile::unicode

namespace cbuild::builder::dockerfile::unicode {
bool is_print(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7F;
  if (is_space(c) || c == 0xAD || (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
      (c >= 0x2060 && c <= 0x206F) || c == 0xFEFF || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
    return false;
  locale_t loc = utf8_locale();
  if (loc == static_cast<locale_t>(nullptr)) return false;
  return iswprint_l(static_cast<wint_t>(c), loc) != 0;
}
}  // namespace cbuild::builder::dockerfile::unicode
