#include "builder/plan/source_kind.h"

namespace cbuild::builder {

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

std::string_view url_path(std::string_view url) {
  auto scheme = url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
  auto slash = rest.find_first_of("/?#");
  if (slash == std::string_view::npos || rest[slash] != '/') return {};
  rest.remove_prefix(slash);
  return rest.substr(0, rest.find_first_of("?#"));
}

bool is_git_source(std::string_view src) {
  if (starts_with(src, "git@") || starts_with(src, "git://") || starts_with(src, "ssh://")) return true;
  if (!starts_with(src, "http://") && !starts_with(src, "https://")) return false;
  std::string_view path = url_path(src);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return path.size() > 4 && path.substr(path.size() - 4) == ".git";
}

bool is_url_source(std::string_view src) {
  return (starts_with(src, "http://") || starts_with(src, "https://")) && !is_git_source(src);
}

}  // namespace cbuild::builder
