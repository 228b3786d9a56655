// `cbuild tag SOURCE TARGET` — another name for an image in the store (like `docker tag`).
#include "cli/command.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

struct TagOptions {
  std::string source, target;
};

int run_tag(const TagOptions& o, const GlobalOptions& g) {
  auto dst = registry::Reference::parse(o.target);
  if (dst.digest()) throw Error(ErrorKind::InvalidArgument, "tag " + quote(o.target) + ": a target cannot name a digest");
  auto store = open_store(g);
  oci::Descriptor d = resolve_entry(*store, o.source);
  d.annotations.clear();
  store->set_tag(dst.str(), d);
  return 0;
}

CommandRegistration reg{{
    .name = "tag",
    .help = "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<TagOptions>();
      app.add_option("SOURCE_IMAGE", o->source, "Image to tag (name[:tag], digest or ID)")->required();
      app.add_option("TARGET_IMAGE", o->target, "New name[:tag]")->required();
      return [o, &g] { return run_tag(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
