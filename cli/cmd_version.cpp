// `cbuild version` — prints the version and the codecs this binary was built with.
#include <iostream>

#include "cli/command.h"

namespace cbuild::cli {
namespace {
CommandRegistration reg{{
    .name = "version",
    .help = "Show the cbuild version",
    .setup = [](CLI::App&, GlobalOptions&) -> std::function<int()> {
      return [] {
        std::cout << "cbuild version " << CBUILD_VERSION << "\n";
#ifdef CBUILD_HAVE_ISAL
        std::cout << "gzip: isa-l (zlib fallback)\n";
#else
        std::cout << "gzip: zlib\n";
#endif
        return 0;
      };
    }}};
}  // namespace
}  // namespace cbuild::cli
