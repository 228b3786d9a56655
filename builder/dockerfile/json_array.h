// JSON-form detection for RUN/CMD/ENTRYPOINT/SHELL/COPY/ADD/VOLUME (internal).
//
// Judges the text exactly as BuildKit does with Go's encoding/json: the whole text must be
// one valid JSON document (surrounding JSON whitespace allowed), starting with `[`; string
// escapes are decoded and invalid UTF-8 or lone surrogates become U+FFFD. Iterative (no
// recursion), so deeply nested input cannot exhaust the stack. Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cbuild::builder::dockerfile {

enum class JsonArrayStatus {
  NotJson,         // not a valid JSON array: the caller falls back to the shell form
  NotStringArray,  // a valid JSON array with a non-string element: a hard parse error
  Ok,
};

struct JsonArray {
  JsonArrayStatus status = JsonArrayStatus::NotJson;
  std::vector<std::string> items;
};

// `text` must already be left-trimmed; anything not starting with '[' is NotJson.
JsonArray parse_json_string_array(std::string_view text);

}  // namespace cbuild::builder::dockerfile
