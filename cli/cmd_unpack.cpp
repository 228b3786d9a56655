// `cbuild unpack [--platform os/arch[/variant]] IMAGE DIR` — writes an OCI runtime bundle (DIR/config.json + DIR/rootfs) that
// `runc run` and `crun run` execute unchanged. IMAGE is a reference in the store or
// "oci:LAYOUT[:REF]"; of a multi-platform image, the manifest of --platform (the host's by
// default), the one `inspect` and FROM pick. Arguments after DIR replace the image's Cmd in config.json.
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
  std::string platform;
  std::vector<std::string> args;
};

CommandRegistration reg{{
    .name = "unpack",
    .help = "Unpack an image into an OCI runtime bundle (config.json + rootfs/) for runc/crun",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<UnpackOptions>();
      app.add_option("--platform", o->platform, "Platform of a multi-platform image (os/arch[/variant]; default: the host's)");
      app.add_option("IMAGE", o->image, "Image (store reference or oci:LAYOUT[:REF])")->required();
      app.add_option("DIR", o->dir, "Bundle directory (must not exist or be empty)")->required();
      // Everything after DIR is the command (its own flags included), never cbuild's.
      app.prefix_command();
      app.fallthrough(false);
      return [o, &g, &app]() -> int {
        o->args = app.remaining();
        std::optional<oci::Platform> platform;
        if (!o->platform.empty()) platform = oci::Platform::parse(o->platform);
        LayoutImage img = open_image_arg(o->image, g.resolved_root(), g.tls_verify, platform);
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
