// `cbuild save [-o FILE] [--format docker|oci] IMAGE...` — writes images to a tar archive
// (stdout without -o, refused on a terminal). With -o the file appears only when complete; temp
// files that killed saves left in the output's directory are removed first.
#include <unistd.h>

#include "cli/command.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "oci/docker_archive.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

struct SaveOptions {
  std::string output;
  std::string format = "docker";
  std::vector<std::string> images;
};

int run_save(const SaveOptions& o, const GlobalOptions& g) {
  auto store = open_store(g);
  std::vector<oci::ArchiveImage> images;
  for (auto& arg : o.images) {
    oci::Descriptor entry = resolve_entry(*store, arg);
    // A tag argument saves under that name only; an ID or digest under every name it has.
    std::vector<std::string> names;
    auto ref = registry::Reference::try_parse(arg);
    if (ref && !ref->digest() && store->resolve(ref->str())) names.push_back(ref->str());
    else names = names_of(*store, entry.digest);
    auto same = std::find_if(images.begin(), images.end(), [&](auto& i) { return i.target.digest == entry.digest; });
    if (same != images.end()) {
      for (auto& n : names)
        if (std::find(same->names.begin(), same->names.end(), n) == same->names.end()) same->names.push_back(n);
      continue;
    }
    oci::Descriptor target = entry;
    target.annotations.clear();
    images.push_back({names, target});
  }
  auto format = o.format == "oci" ? oci::ArchiveFormat::Oci : oci::ArchiveFormat::Docker;
  if (o.output.empty() || o.output == "-") {
    if (::isatty(STDOUT_FILENO))
      throw Error(ErrorKind::InvalidArgument, "cowardly refusing to save to a terminal. Use the -o flag or redirect");
    oci::save_archive(*store, images, format, STDOUT_FILENO);
    return 0;
  }
  // A save killed mid-write left its temp file beside the output: it is removed here, and a
  // concurrent live save's never is (the temp names carry their owner, see owner.h).
  std::filesystem::path out_path(o.output);
  remove_dead_atomic_temps(out_path.has_parent_path() ? out_path.parent_path() : std::filesystem::path("."));
  AtomicFile out(o.output);
  oci::save_archive(*store, images, format, out.fd());
  out.commit();
  return 0;
}

CommandRegistration reg{{
    .name = "save",
    .help = "Save one or more images to a tar archive (docker-archive or OCI archive)",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<SaveOptions>();
      app.add_option("-o,--output", o->output, "Write to a file, instead of STDOUT");
      app.add_option("--format", o->format, "Archive format: docker (docker load) or oci")
          ->check(CLI::IsMember({"docker", "oci"}));
      app.add_option("IMAGE", o->images, "Images to save (name[:tag], digest or ID)")->required();
      return [o, &g] { return run_save(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
