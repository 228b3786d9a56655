// `cbuild pull [--platform os/arch[/variant]] [--all-platforms] [-q] REF` — fetches an image
// into the store, tags it with the full normalized reference and prints its digest on stdout
// (progress goes to stderr).
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "oci/layout_store.h"
#include "registry-client/blob_origins.h"
#include "registry-client/connect.h"
#include "registry-client/puller.h"

namespace cbuild::cli {
namespace {

struct PullCmdOptions {
  std::string ref;
  std::string platform;
  bool all_platforms = false;
  bool quiet = false;
  int jobs = 4;
};

int run_pull(const PullCmdOptions& o, const GlobalOptions& g) {
  auto ref = registry::Reference::parse(o.ref);
  auto store = oci::LayoutStore::open(g.resolved_root());
  auto lease = store->acquire_lease("pull");
  store->set_default_lease(lease);
  registry::BlobOrigins origins(store->root());
  oci::DiffIdRecords diff_ids(store->root());
  auto transport = registry::connect(ref, g.tls_verify);
  registry::PullOptions po;
  if (!o.platform.empty()) po.platform = oci::Platform::parse(o.platform);
  po.all_platforms = o.all_platforms;
  po.jobs = o.jobs;
  po.origins = &origins;
  po.diff_ids = &diff_ids;
  if (!o.quiet) po.log = [](const std::string& line) { std::cerr << line << "\n"; };
  if (!o.quiet) std::cerr << "pulling " << ref.str() << "\n";
  auto res = registry::Puller(*transport, *store, po).pull(ref);
  if (!o.quiet)
    std::cerr << "tagged " << ref.str() << " (" << res.blobs_fetched << " blobs fetched, " << res.blobs_present
              << " already present, " << res.bytes_fetched << " bytes)\n";
  std::cout << res.tagged.digest.str() << "\n";
  return 0;
}

CommandRegistration reg{{
    .name = "pull",
    .help = "Pull an image from a registry into the store",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<PullCmdOptions>();
      app.add_option("--platform", o->platform, "Platform to pull from a multi-platform image (os/arch[/variant])");
      app.add_flag("-a,--all-platforms", o->all_platforms, "Pull every platform and tag the index");
      app.add_flag("-q,--quiet", o->quiet, "Print only the digest");
      app.add_option("--jobs", o->jobs, "Blobs fetched at once")->check(CLI::Range(1, 64));
      app.add_option("REF", o->ref, "Image reference (name[:tag][@digest])")->required();
      return [o, &g] { return run_pull(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
