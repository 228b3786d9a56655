// Subcommand registration. Each cmd_*.cpp defines one (or a few) commands and registers them
// with a static CommandRegistration, so adding a command never touches main.cpp.
//
//   static cbuild::cli::CommandRegistration reg{{
//       .name = "images", .help = "List images in the local store",
//       .setup = [](CLI::App& app, cbuild::cli::GlobalOptions& g) {
//         auto opts = std::make_shared<ImagesOptions>();
//         app.add_flag("-q,--quiet", opts->quiet, "Only show digests");
//         return [opts, &g] { return run_images(*opts, g); };   // runs after parsing
//       }}};
//
// The returned function runs after the whole command line is parsed. It returns the exit
// code (0 success); failures throw cbuild::Error, which main() prints as one line.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace cbuild::cli {

// Flags accepted before or after any subcommand.
struct GlobalOptions {
  std::string root;        // --root / CBUILD_ROOT; empty means the default
  bool tls_verify = true;  // --tls-verify=false allows plain HTTP and unverified TLS
  bool tls_verify_set = false;  // true when --tls-verify was given explicitly

  // The store root: --root, else $CBUILD_ROOT, else /var/lib/cbuild as root, else
  // $XDG_DATA_HOME/cbuild (or ~/.local/share/cbuild).
  std::string resolved_root() const;
};

struct CommandDef {
  std::string name;
  std::string help;
  std::function<std::function<int()>(CLI::App&, GlobalOptions&)> setup;
  std::vector<std::string> aliases = {};
};

struct CommandRegistration {
  explicit CommandRegistration(CommandDef def);
};

const std::vector<CommandDef>& registered_commands();

}  // namespace cbuild::cli
