// Dockerfile parser with BuildKit's exact behaviour (directives, escape character, line
// continuations, comments, CRLF and BOM, JSON vs shell form, flags, heredocs).
//
// parse() only reads the given text. It throws DockerfileError ("FILE:LINE: message") on a
// parse error: no instruction, a bad or repeated directive, an unterminated heredoc, a JSON
// array with a non-string element, ENV/LABEL without a value or without '=', a physical line
// of 64 KiB or more (BuildKit's scanner limit, kept for compatibility), a NUL byte anywhere
// (it would silently cut the instruction where it becomes a C string), ONBUILD nested more
// than 16 deep. Other bytes are kept as they are, invalid UTF-8 included (the planner makes
// those U+FFFD first, as docker does: builder/dockerfile/valid_utf8.h). Unknown instructions still parse (they are rejected when typed). Runs in
// time linear in the input. Thread-safe (no shared state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "builder/dockerfile/ast.h"

namespace cbuild::builder::dockerfile {

// Longest physical line accepted, in bytes without its newline (Go's bufio.Scanner limit).
inline constexpr std::size_t kMaxLineLength = 65535;

ParsedDockerfile parse(std::string_view text, std::string_view file_name = "Dockerfile");

// Parses "  # name = value" into (lower-case name, value); false if it is not of that form.
bool parse_directive_line(std::string_view line, std::string& name, std::string& value);

// The heredoc a word opens ("<<EOF", "<<-'EOF'", "3<<\"A\"": name without quotes, expand,
// chomp, fd; content empty), or nullopt when the word is not one (BuildKit's
// MustParseHeredoc). A COPY/ADD source names its heredoc this way.
std::optional<Heredoc> heredoc_word(const std::string& word);

}  // namespace cbuild::builder::dockerfile
