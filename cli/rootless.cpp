#include "cli/rootless.h"

#include <unistd.h>

#include <cstdio>
#include <string_view>

namespace cbuild::cli {

bool needs_user_namespace(const std::vector<std::string>& args) {
  if (::geteuid() == 0) return false;
  for (const auto& a : args) {
    if (a == "--help" || a == "-h" || a == "--version") return false;
    if (a.empty() || a[0] == '-') continue;
    // The first word that is not a flag: a store-free command, or anything else (build's
    // context, a flag's value, another command) — which needs the namespace.
    for (std::string_view w : {"version", "check", "debug", "login", "logout", "help"})
      if (a == w) return false;
    return true;
  }
  return true;
}

overlay::IdMapping enter_rootless_mode() {
  overlay::IdMapping m = overlay::enter_user_namespace();
  if (m.kind == overlay::IdMapping::Kind::Single)
    std::fprintf(stderr, "cbuild: warning: %s\n", overlay::single_mapping_notice(m).c_str());
  return m;
}

}  // namespace cbuild::cli
