// Valid UTF-8 for the image config, the way docker/BuildKit get it.
//
// docker turns every byte of a Dockerfile that is not part of a valid UTF-8 sequence into
// U+FFFD, one per byte (Go's rule, as json.Marshal applies it): `RUN echo \xff > /f` writes
// "\xEF\xBF\xBD\n" and its history says so. The planner applies valid_utf8() to the Dockerfile
// and the build-args (planner.h); with_valid_utf8() does the same to every string and key of
// the image config before it is dumped, for text from anywhere else (--label, a base image).
// Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cbuild::builder {

// `s` with each invalid byte replaced by U+FFFD (Go's rules; "\xed\xa0\x80", a surrogate,
// is three invalid bytes).
std::string valid_utf8(std::string_view s);

// `doc` with valid_utf8() applied to every string and key; unchanged when all are valid.
nlohmann::json with_valid_utf8(nlohmann::json doc);

}  // namespace cbuild::builder
