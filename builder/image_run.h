// Image runs and views — the work behind `cbuild run` and `cbuild mount`/`umount`, so the CLI
// only parses flags and prints results.
//
// run_in_rootfs() runs one command in the sandbox on a root filesystem directory; run_in_image()
// stacks an image's snapshots under a throw-away upper, runs there, and unmounts and discards
// the upper however the command ends. The image supplies the defaults (Entrypoint + Cmd, Env,
// WorkingDir, User); the options override them. stdin, stdout and stderr are this process's.
// The result is the command's exit code (128+N when killed by signal N). Both need root.
//
// mount_image_view() pins an image's top snapshot as a persistent read-only view
// ($ROOT/mounts/<name>/merged) and mounts it unless it already is; the mount outlives this
// process, and prune keeps the pinned snapshots until unmount_image_view().
//
// The caller resolves the image and makes sure its snapshots exist (the top chain ID is the
// input here). Failures throw cbuild::Error and leave nothing mounted that was not before.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "overlay/runtime_bundle.h"
#include "overlay/sandbox.h"
#include "overlay/snapshot_store.h"

namespace cbuild::builder {

struct ImageRunOptions {
  std::vector<std::string> env;  // "KEY=VALUE", replacing the image's KEY
  std::string workdir;           // empty: the image's WorkingDir, else "/"
  std::string user;              // empty: the image's User
  overlay::NetworkMode network = overlay::NetworkMode::Host;
  std::optional<std::string> hostname;  // nullopt: the sandbox's default
  overlay::ResourceLimits limits;
};

// `argv` empty means the image's Cmd; Entrypoint is always prepended. InvalidArgument when the
// result is empty.
int run_in_rootfs(const ImageRunOptions& o, const std::filesystem::path& rootfs, const std::vector<std::string>& argv,
                  const overlay::ImageRuntimeInfo& image = {});

// `stack` is a writable stack over the image's snapshots, their locks held (SnapshotStore::
// prepare, through builder::lock_snapshots so that a concurrent prune cannot take a lower);
// it is mounted for the run and discarded after. `store_root` holds this process's scratch
// (reclaimed by the next opener if it is killed).
int run_in_image(const ImageRunOptions& o, const std::filesystem::path& store_root, overlay::PreparedSnapshot stack,
                 const std::vector<std::string>& argv, const overlay::ImageRuntimeInfo& image);

// The pin name of an image's view: the first 12 hex digits of its manifest digest.
std::string image_view_name(const oci::Digest& manifest_digest);

// Mounts chain `top` read-only, pinned as `name`; returns the mount point (canonical path).
std::filesystem::path mount_image_view(overlay::SnapshotStore& snapshots, const oci::Digest& top, const std::string& name);

// The pin name when `path` is a view's mount point ($ROOT/mounts/<name>/merged), else nullopt.
std::optional<std::string> image_view_at(const std::filesystem::path& store_root, const std::filesystem::path& path);

// Unmounts and unpins view `name`; returns its former mount point. NotFound naming `what`
// when no such view is pinned.
std::filesystem::path unmount_image_view(overlay::SnapshotStore& snapshots, const std::string& name, const std::string& what);

}  // namespace cbuild::builder
