// `cbuild unpack IMAGE DIR` — writes an OCI runtime bundle (DIR/config.json + DIR/rootfs) that
// `runc run` and `crun run` execute unchanged. IMAGE is a reference in the store or
// "oci:LAYOUT[:REF]". Arguments after DIR replace the image's Cmd in config.json.
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "cli/layout_image.h"
#include "oci/base/error.h"
#include "overlay/runtime_bundle.h"

namespace cbuild::cli {
namespace {

struct UnpackOptions {
  std::string image;
  std::string dir;
  std::vector<std::string> args;
};

CommandRegistration reg{{
    .name = "unpack",
    .help = "Unpack an image into an OCI runtime bundle (config.json + rootfs/) for runc/crun",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<UnpackOptions>();
      app.add_option("IMAGE", o->image, "Image (store reference or oci:LAYOUT[:REF])")->required();
      app.add_option("DIR", o->dir, "Bundle directory (must not exist or be empty)")->required();
      // Everything after DIR is the command (its own flags included), never cbuild's.
      app.prefix_command();
      app.fallthrough(false);
      return [o, &g, &app]() -> int {
        o->args = app.remaining();
        LayoutImage img = open_image_arg(o->image, g.resolved_root());
        std::size_t next = 0;
        overlay::write_bundle(o->dir, img.runtime,
                                      [&]() -> std::unique_ptr<oci::TarReader> {
                                        return next < img.layers.size() ? img.open_layer(next++) : nullptr;
                                      },
                                      o->args);
        std::cout << o->dir << "\n";
        return 0;
      };
    }}};

}  // namespace
}  // namespace cbuild::cli
