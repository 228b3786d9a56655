// `cbuild load [-i FILE] [-q]` — loads images from a docker-archive or OCI archive (stdin
// without -i) and prints `Loaded image: NAME` for each name (`Loaded image ID: …` if unnamed).
// Blobs are protected by a lease while loading; tags are set only after the whole archive
// was read and verified.
#include <fcntl.h>
#include <unistd.h>

#include <iostream>

#include "cli/command.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/docker_archive.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

struct LoadOptions {
  std::string input;
  bool quiet = false;
};

int run_load(const LoadOptions& o, const GlobalOptions& g) {
  auto store = open_store(g);
  auto lease = store->acquire_lease("load");
  store->set_default_lease(lease);
  UniqueFd in;
  int fd = STDIN_FILENO;
  std::string what = "stdin";
  if (!o.input.empty() && o.input != "-") {
    in = open_file(o.input, O_RDONLY);
    fd = in.get();
    what = quote(o.input);
  } else if (::isatty(STDIN_FILENO)) {
    throw Error(ErrorKind::InvalidArgument, "requested load from stdin, but stdin is empty");
  }
  auto loaded = oci::load_archive(*store, fd, what);
  store->set_default_lease(nullptr);
  // Normalize every name first: a bad name fails the load before anything is tagged.
  std::vector<std::pair<std::string, oci::Descriptor>> tags;
  std::vector<std::string> lines;
  for (auto& img : loaded) {
    for (auto& n : img.names) {
      auto ref = registry::Reference::parse(n);
      if (ref.digest()) continue;  // a digest is not a tag name
      tags.emplace_back(ref.str(), img.target);
      lines.push_back("Loaded image: " + ref.familiar());
    }
    if (img.names.empty()) {
      store->add_entry(img.target);
      lines.push_back("Loaded image ID: " + (img.config.is_empty() ? img.target.digest : img.config).str());
    }
  }
  if (!tags.empty()) store->set_tags(tags);
  // docker prints the names even with -q (it only hides progress, which load has none of).
  for (auto& l : lines) std::cout << l << "\n";
  return 0;
}

CommandRegistration reg{{
    .name = "load",
    .help = "Load images from a tar archive (docker-archive or OCI archive) or STDIN",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<LoadOptions>();
      app.add_option("-i,--input", o->input, "Read from tar archive file, instead of STDIN");
      app.add_flag("-q,--quiet", o->quiet, "Suppress the load output (names are still printed)");
      return [o, &g] { return run_load(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
