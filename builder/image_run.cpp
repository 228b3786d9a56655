#include "builder/image_run.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "overlay/active_mount.h"
#include "overlay/init_layer.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

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

}  // namespace

int run_in_rootfs(const ImageRunOptions& o, const fs::path& rootfs, const std::vector<std::string>& argv,
                  const overlay::ImageRuntimeInfo& image) {
  std::vector<std::string> full = image.entrypoint;
  const auto& cmd = argv.empty() ? image.cmd : argv;
  full.insert(full.end(), cmd.begin(), cmd.end());
  if (full.empty()) throw Error(ErrorKind::InvalidArgument, "run: no command given and the image has none");
  overlay::RunSpec spec;
  spec.rootfs = rootfs;
  spec.argv = std::move(full);
  spec.env = image.env;
  for (const auto& kv : o.env) {
    std::string key = kv.substr(0, kv.find('='));
    std::erase_if(spec.env, [&](const std::string& e) { return e.substr(0, e.find('=')) == key; });
    spec.env.push_back(kv);
  }
  spec.cwd = o.workdir.empty() ? (image.working_dir.empty() ? "/" : image.working_dir) : o.workdir;
  spec.user = o.user.empty() ? image.user : o.user;
  spec.network = o.network;
  if (o.hostname) spec.hostname = *o.hostname;
  spec.limits = o.limits;
  spec.stdin_fd = 0;
  spec.stdout_fd = 1;
  spec.stderr_fd = 2;
  TempDir init;
  overlay::InitFilesOptions io;
  io.hostname = spec.hostname;
  io.network = spec.network;
  overlay::write_init_files(init.path(), io);
  spec.init_files = init.path();
  // The command writes to the same stdout: what this process printed must come first.
  std::cout.flush();
  return overlay::Sandbox::run(spec).code;
}

int run_in_image(const ImageRunOptions& o, const fs::path& store_root, overlay::PreparedSnapshot stack,
                 const std::vector<std::string>& argv, const overlay::ImageRuntimeInfo& image) {
  // The init files' temp dir goes to this process's scratch in the store, which the next
  // store opener reclaims should this process be killed (as it does the upper below).
  std::optional<ProcessScratch> scratch;
  std::error_code no_store;
  if (fs::is_directory(store_root / "tmp", no_store)) scratch.emplace(store_root / "tmp");
  overlay::ActiveMount mount(stack.mount_spec(), stack.upper().parent_path() / "merged");
  return run_in_rootfs(o, mount.target(), argv, image);
}

std::string image_view_name(const oci::Digest& manifest_digest) { return manifest_digest.hex().substr(0, 12); }

fs::path mount_image_view(overlay::SnapshotStore& snapshots, const oci::Digest& top, const std::string& name) {
  auto pin = snapshots.pin(top, name);
  fs::path target = fs::canonical(pin.target.parent_path()) / "merged";
  if (!is_mount_point(target)) {
    overlay::ActiveMount m(pin.spec, target);
    // The view outlives this process until unmount_image_view(); the pin records it.
    m.release();
  }
  return target;
}

std::optional<std::string> image_view_at(const fs::path& store_root, const fs::path& path) {
  std::error_code ec;
  fs::path as_path = fs::weakly_canonical(path, ec);
  fs::path mounts = fs::weakly_canonical(store_root / "mounts", ec);
  if (!ec && as_path.filename() == "merged" && as_path.parent_path().parent_path() == mounts)
    return as_path.parent_path().filename().string();
  return std::nullopt;
}

fs::path unmount_image_view(overlay::SnapshotStore& snapshots, const std::string& name, const std::string& what) {
  std::error_code ec;
  fs::path target = fs::weakly_canonical(snapshots.pin_dir(name), ec) / "merged";
  if (!snapshots.pinned(name)) throw Error(ErrorKind::NotFound, "umount: " + quote(what) + " is not mounted");
  overlay::ActiveMount::unmount_path(target);
  snapshots.unpin(name);
  return target;
}

}  // namespace cbuild::builder
