// `cbuild mount IMAGE` — mounts a read-only merged view of an image's layers and prints its
// path ($ROOT/mounts/<id>/merged); it stays mounted until `cbuild umount IMAGE|PATH`.
// The snapshots under a mounted view are kept by prune.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/command.h"
#include "cli/layout_image.h"
#include "oci/base/error.h"
#include "overlay/active_mount.h"
#include "overlay/snapshot_store.h"

namespace {

namespace fs = std::filesystem;
using cbuild::Error;
using cbuild::ErrorKind;

bool is_mount_point(const fs::path& p) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, mnt;
    ls >> id >> parent >> dev >> root >> mnt;
    if (mnt == p.string()) return true;
  }
  return false;
}

void require_root(const char* what) {
  if (::geteuid() != 0)
    throw Error(ErrorKind::PermissionDenied, std::string(what) + ": mounting needs root (rootless mounts are not supported yet)");
}

std::string mount_name(const cbuild::cli::LayoutImage& img) { return img.manifest_digest.hex().substr(0, 12); }

cbuild::cli::CommandRegistration mount_reg{{
    .name = "mount",
    .help = "Mount an image's filesystem read-only and print the mount point",
    .setup = [](CLI::App& app, cbuild::cli::GlobalOptions& g) -> std::function<int()> {
      auto image = std::make_shared<std::string>();
      app.add_option("IMAGE", *image, "Image (store reference or oci:LAYOUT[:REF])")->required();
      return [image, &g]() -> int {
        require_root("mount");
        std::string root = g.resolved_root();
        cbuild::cli::LayoutImage img = cbuild::cli::open_image_arg(*image, root);
        cbuild::overlay::SnapshotStore snapshots(root);
        auto top = cbuild::cli::ensure_snapshots(snapshots, img);
        if (!top) throw Error(ErrorKind::FailedPrecondition, "mount: image " + cbuild::quote(*image) + " has no layers");
        auto pin = snapshots.pin(*top, mount_name(img));
        fs::path target = fs::canonical(pin.target.parent_path()) / "merged";
        if (!is_mount_point(target)) {
          cbuild::overlay::ActiveMount m(pin.spec, target);
          m.release();
        }
        std::cout << target.string() << "\n";
        return 0;
      };
    }}};

cbuild::cli::CommandRegistration umount_reg{{
    .name = "umount",
    .help = "Unmount an image mounted with cbuild mount (IMAGE or mount point)",
    .setup = [](CLI::App& app, cbuild::cli::GlobalOptions& g) -> std::function<int()> {
      auto arg = std::make_shared<std::string>();
      app.add_option("IMAGE|PATH", *arg, "Image or mount point")->required();
      return [arg, &g]() -> int {
        require_root("umount");
        std::string root = g.resolved_root();
        cbuild::overlay::SnapshotStore snapshots(root);
        std::string name;
        std::error_code ec;
        fs::path as_path = fs::weakly_canonical(*arg, ec);
        fs::path mounts = fs::weakly_canonical(fs::path(root) / "mounts", ec);
        if (!ec && as_path.filename() == "merged" && as_path.parent_path().parent_path() == mounts)
          name = as_path.parent_path().filename();
        else
          name = mount_name(cbuild::cli::open_image_arg(*arg, root));
        fs::path target = fs::weakly_canonical(snapshots.pin_dir(name), ec) / "merged";
        if (!snapshots.pinned(name))
          throw Error(ErrorKind::NotFound, "umount: " + cbuild::quote(*arg) + " is not mounted");
        cbuild::overlay::ActiveMount::unmount_path(target);
        snapshots.unpin(name);
        std::cout << target.string() << "\n";
        return 0;
      };
    }}};

}  // namespace
