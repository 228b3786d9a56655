// `cbuild debug ast FILE` — prints the Dockerfile syntax tree in BuildKit's dump format on
// stdout (warnings on stderr); exits 1 on a parse error. FILE "-" reads stdin.
#include <iostream>
#include <iterator>
#include <memory>

#include "builder/dockerfile/parser.h"
#include "cli/command.h"
#include "oci/base/fs.h"

namespace cbuild::cli {
namespace {

std::string read_dockerfile(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  return read_file(path);
}

CommandRegistration reg{{
    .name = "debug",
    .help = "Developer tools (debug ast FILE: print the Dockerfile syntax tree)",
    .setup = [](CLI::App& app, GlobalOptions&) -> std::function<int()> {
      auto file = std::make_shared<std::string>();
      auto* ast = app.add_subcommand("ast", "Print the parsed Dockerfile in BuildKit's dump format");
      ast->add_option("FILE", *file, "Dockerfile to parse (- for stdin)")->required();
      app.require_subcommand(1);
      return [file] {
        namespace df = builder::dockerfile;
        std::string text = read_dockerfile(*file);
        df::ParsedDockerfile tree;
        try {
          tree = df::parse(text, *file == "-" ? "Dockerfile" : *file);
        } catch (const df::DockerfileError& e) {
          std::cerr << e.what() << "\n";  // already "FILE:LINE: message"
          return 1;
        }
        for (const auto& w : tree.warnings) std::cerr << w.to_string() << "\n";
        std::cout << df::dump(tree);
        std::cout.flush();
        return 0;
      };
    }}};

}  // namespace
}  // namespace cbuild::cli
