// `cbuild mount IMAGE` — mounts a read-only merged view of an image's layers and prints its
// path ($ROOT/mounts/<id>/merged); it stays mounted until `cbuild umount IMAGE|PATH`.
// The snapshots under a mounted view are kept by prune.
#include <unistd.h>

#include <iostream>
#include <memory>

#include "builder/image_run.h"
#include "cli/command.h"
#include "cli/layout_image.h"
#include "oci/base/error.h"
#include "overlay/isolation.h"
#include "overlay/snapshot_store.h"
#include "overlay/user_namespace.h"

namespace cbuild::cli {
namespace {

namespace fs = std::filesystem;

void require_root(const char* what) {
  // A rootless cbuild mounts in a mount namespace of its own, which ends when it exits: a
  // mount point printed from there would be empty for everybody else.
  if (overlay::current_id_mapping())
    throw Error(ErrorKind::PermissionDenied,
                std::string(what) + ": a rootless cbuild's mounts end with it (they live in its own mount namespace); "
                                    "run as root, or use 'cbuild unpack' for a directory");
  if (::geteuid() != 0)
    throw Error(ErrorKind::PermissionDenied, std::string(what) + ": mounting needs root");
  if (!overlay::probe_isolation().cap_sys_admin)
    throw Error(ErrorKind::PermissionDenied,
                std::string(what) + ": mounting needs CAP_SYS_ADMIN, which this process lacks (as in a container with "
                                    "docker's default capabilities); 'cbuild unpack' gives the image's filesystem instead");
}

CommandRegistration mount_reg{{
    .name = "mount",
    .help = "Mount an image's filesystem read-only and print the mount point",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto image = std::make_shared<std::string>();
      app.add_option("IMAGE", *image, "Image (store reference or oci:LAYOUT[:REF])")->required();
      return [image, &g]() -> int {
        require_root("mount");
        std::string root = g.resolved_root();
        LayoutImage img = open_image_arg(*image, root, g.tls_verify);
        overlay::SnapshotStore snapshots(root);
        auto top = ensure_snapshots(snapshots, img);
        if (!top) throw Error(ErrorKind::FailedPrecondition, "mount: image " + quote(*image) + " has no layers");
        fs::path target = builder::mount_image_view(snapshots, *top, builder::image_view_name(img.manifest_digest));
        std::cout << target.string() << "\n";
        return 0;
      };
    }}};

CommandRegistration umount_reg{{
    .name = "umount",
    .help = "Unmount an image mounted with cbuild mount (IMAGE or mount point)",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto arg = std::make_shared<std::string>();
      app.add_option("IMAGE|PATH", *arg, "Image or mount point")->required();
      return [arg, &g]() -> int {
        require_root("umount");
        std::string root = g.resolved_root();
        overlay::SnapshotStore snapshots(root);
        std::string name;
        if (auto at = builder::image_view_at(root, *arg)) name = *at;
        else name = builder::image_view_name(open_image_arg(*arg, root, g.tls_verify).manifest_digest);
        fs::path target = builder::unmount_image_view(snapshots, name, *arg);
        std::cout << target.string() << "\n";
        return 0;
      };
    }}};

}  // namespace
}  // namespace cbuild::cli
