// `cbuild push [-q] IMAGE [DEST]` — uploads an image of the store (IMAGE, a tag of the store)
// to DEST (default IMAGE) and prints the digest on stdout (progress goes to stderr).
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "oci/base/error.h"
#include "oci/layout_store.h"
#include "registry-client/blob_origins.h"
#include "registry-client/connect.h"
#include "registry-client/origin_fetcher.h"
#include "registry-client/pusher.h"

namespace cbuild::cli {
namespace {

struct PushCmdOptions {
  std::string image;
  std::string dest;
  bool quiet = false;
  int jobs = 4;
};

int run_push(const PushCmdOptions& o, const GlobalOptions& g) {
  auto src = registry::Reference::parse(o.image);
  auto dest = o.dest.empty() ? src : registry::Reference::parse(o.dest);
  auto store = oci::LayoutStore::open(g.resolved_root());
  // A layer held lazily is fetched only if the destination neither has it nor can mount it.
  store->set_blob_fetcher(registry::origin_fetcher(*store, g.tls_verify));
  auto desc = store->resolve(src.str());
  if (!desc) throw Error(ErrorKind::NotFound, "push " + quote(o.image) + ": no such image in the store (" + src.str() + ")");
  registry::BlobOrigins origins(store->root());
  auto transport = registry::connect(dest, g.tls_verify);
  registry::PushOptions po;
  po.jobs = o.jobs;
  po.origins = &origins;
  if (!o.quiet) po.log = [](const std::string& line) { std::cerr << line << "\n"; };
  if (!o.quiet) std::cerr << "pushing " << src.str() << " to " << dest.str() << "\n";
  auto res = registry::Pusher(*transport, *store, po).push(*desc, dest);
  std::cout << res.digest.str() << "\n";
  return 0;
}

CommandRegistration reg{{
    .name = "push",
    .help = "Push an image from the store to a registry",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<PushCmdOptions>();
      app.add_flag("-q,--quiet", o->quiet, "Print only the digest");
      app.add_option("--jobs", o->jobs, "Blobs uploaded at once")->check(CLI::Range(1, 64));
      app.add_option("IMAGE", o->image, "Image in the store")->required();
      app.add_option("DEST", o->dest, "Destination reference (default: IMAGE)");
      return [o, &g] { return run_push(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
