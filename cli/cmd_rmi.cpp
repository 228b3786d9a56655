// `cbuild rmi [-f] IMAGE...` — untags images and removes their blobs no other image, build-cache
// record or running operation uses (like `docker rmi`).
#include <iostream>

#include "builder/cache/cache.h"
#include "cli/command.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

struct RmiOptions {
  bool force = false;
  std::vector<std::string> images;
};

void delete_unused(oci::LayoutStore& store, const GlobalOptions& g, const oci::Digest& target) {
  if (!names_of(store, target).empty()) return;
  store.remove_entries(target);
  oci::GcOptions opts;
  opts.grace = std::chrono::seconds(0);
  opts.only = store.reachable({target});
  auto cache = builder::BuildCache(g.resolved_root()).referenced_blobs();
  opts.extra_roots = cache;
  store.gc(opts);
  std::cout << "Deleted: " << target.str() << "\n";
}

int rmi_one(oci::LayoutStore& store, const GlobalOptions& g, const RmiOptions& o, const std::string& arg) {
  auto ref = registry::Reference::try_parse(arg);
  if (ref && !ref->digest()) {
    if (auto d = store.resolve(ref->str())) {
      store.remove_tag(ref->str());
      std::cout << "Untagged: " << ref->familiar() << "\n";
      delete_unused(store, g, d->digest);
      return 0;
    }
  }
  StoreImage img = resolve_image(store, arg);
  auto names = names_of(store, img.target.digest);
  if (names.size() > 1 && !o.force)
    throw Error(ErrorKind::FailedPrecondition, "conflict: unable to delete " + short_id(img.config_digest) +
                                                   " (must be forced) - image is referenced in multiple repositories");
  for (auto& n : names) {
    store.remove_tag(n);
    auto r = registry::Reference::try_parse(n);
    std::cout << "Untagged: " << (r ? r->familiar() : n) << "\n";
  }
  delete_unused(store, g, img.target.digest);
  return 0;
}

int run_rmi(const RmiOptions& o, const GlobalOptions& g) {
  auto store = open_store(g);
  int rc = 0;
  for (auto& arg : o.images) {
    try {
      rmi_one(*store, g, o, arg);
    } catch (const Error& e) {
      // Like docker: report, go on with the other images, fail at the end.
      std::cerr << "cbuild: error: " << e.what() << "\n";
      rc = 1;
    }
  }
  return rc;
}

CommandRegistration reg{{
    .name = "rmi",
    .help = "Remove one or more images",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<RmiOptions>();
      app.add_flag("-f,--force", o->force, "Force removal of an image referenced by several tags");
      app.add_option("IMAGE", o->images, "Images to remove (name[:tag], digest or ID)")->required();
      return [o, &g] { return run_rmi(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
