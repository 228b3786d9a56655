// Runtime bundles — an image as an OCI runtime bundle (config.json + rootfs/) that runc or
// crun run unchanged: the hand-off behind `cbuild unpack IMAGE DIR`.
//
// config.json follows the image-spec's conversion rules (conversion.md): process.args =
// Entrypoint + Cmd (Cmd replaced by `args` when given), Env, WorkingDir (default "/"), User
// resolved against the bundle's own /etc/passwd and /etc/group (user_db.h), labels as
// annotations, plus the runtime defaults runc's `spec` writes (namespaces pid, ipc, uts, mount,
// network; /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys read-only; masked and read-only
// /proc paths; devices denied) and Docker's default capability set. The rootfs is the layers
// applied in flatten mode (whiteouts delete). Thread-safe (no shared state); throws
// cbuild::Error naming the bundle path or the layer.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "oci/tar_reader.h"
#include "overlay/user_db.h"

namespace cbuild::overlay {

// The parts of an image config (config.config) that the conversion uses.
struct ImageRuntimeInfo {
  std::vector<std::string> env;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::string user;
  std::map<std::string, std::string> labels;
  std::string hostname = "cbuild";
};

// The config.json text (pretty, deterministic). `args` non-empty replaces Cmd.
std::string runtime_config_json(const ImageRuntimeInfo& info, const ExecUser& user,
                                const std::vector<std::string>& args = {});

// Writes DIR/rootfs (the layers in order, flattened) and DIR/config.json. DIR must not exist
// or be empty. `layers` yields one TarReader per layer, bottom first, and nullptr at the end.
// On failure what it wrote is removed again (DIR too when it did not exist).
void write_bundle(const std::filesystem::path& dir, const ImageRuntimeInfo& info,
                  const std::function<std::unique_ptr<oci::TarReader>()>& next_layer,
                  const std::vector<std::string>& args = {});

}  // namespace cbuild::overlay
