// What kind of source a COPY/ADD word names, by BuildKit's rules: the planner needs this to
// route URLs to the fetcher and to reject Git sources, and the fetcher needs the same URL
// path reading to name the file it writes, so both take it from here.
#pragma once

#include <string_view>

namespace cbuild::builder {

// "http://…" or "https://…", and not a Git source.
bool is_url_source(std::string_view src);
// A source BuildKit would clone: git@…, git://…, ssh://…, or an http(s) URL whose path ends
// in ".git" (before any "#ref").
bool is_git_source(std::string_view src);

// The path part of an absolute URL: after "scheme://authority", before "?" or "#"; empty when
// the URL has none.
std::string_view url_path(std::string_view url);

}  // namespace cbuild::builder
