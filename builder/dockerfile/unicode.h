// Go-compatible UTF-8 and character-class helpers for the Dockerfile front end (internal).
//
// BuildKit is written in Go, so its parser decodes UTF-8 the way Go does (an invalid byte
// becomes U+FFFD) and classifies characters with Go's unicode package. These helpers
// reproduce that for the byte-exact conformance data. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cbuild::builder::dockerfile::unicode {

// Decodes one code point at s[pos]; sets `width` (>= 1). Invalid sequences give U+FFFD, width 1.
char32_t decode(std::string_view s, std::size_t pos, std::size_t& width);
// Decodes the whole string (invalid bytes → U+FFFD, like Go's range over a string).
std::u32string decode_all(std::string_view s);
void append(std::string& out, char32_t c);
std::string encode(std::u32string_view s);

// Go's unicode.IsSpace.
bool is_space(char32_t c);
// Go's unicode.IsSpace applied to a single byte widened to a rune (BuildKit's byte loops).
inline bool is_space_byte(unsigned char b) { return is_space(static_cast<char32_t>(b)); }
// Go's unicode.IsLetter / IsDigit (ASCII exact; beyond ASCII via the C.UTF-8 locale tables).
bool is_letter(char32_t c);
bool is_digit(char32_t c);

// Go's strings.TrimSpace / TrimLeftFunc(IsSpace) on UTF-8 text.
std::string_view trim_space(std::string_view s);
std::string_view trim_left_space(std::string_view s);

}  // namespace cbuild::builder::dockerfile::unicode

namespace cbuild::builder::dockerfile::unicode {
// Go's strconv.IsPrint (approximated beyond ASCII with the C.UTF-8 locale tables).
bool is_print(char32_t c);
}  // namespace cbuild::builder::dockerfile::unicode
