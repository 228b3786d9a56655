// `cbuild run [OPTIONS] IMAGE [COMMAND [ARG…]]` — runs a command in an image with cbuild's
// sandbox, like `podman run --rm`. Options end at IMAGE, so `cbuild run IMAGE sh -c '…'`
// needs no "--". `--rootfs` takes a directory instead of an image (like podman's flag).
// IMAGE is a reference in the store or "oci:LAYOUT[:REF]"; its layers are stacked as overlay
// lowers under a throw-away upper. The exit code is the command's (128+N when killed by
// signal N). Changes are always discarded: cbuild keeps no containers, `--rm` is accepted
// for compatibility.
#include <unistd.h>

#include <cmath>
#include <iostream>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/layout_image.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "overlay/active_mount.h"
#include "overlay/init_layer.h"
#include "overlay/snapshot_store.h"
#include "overlay/sandbox.h"

namespace {

using cbuild::Error;
using cbuild::ErrorKind;

struct RunOptions {
  bool rm = false;
  bool rootfs = false;
  bool interactive = false;
  bool tty = false;
  std::vector<std::string> env;
  std::string workdir;
  std::string user;
  std::string network = "host";
  std::string hostname;
  std::string memory;
  double cpus = 0;
  std::int64_t pids_limit = 0;
};

// Docker's size syntax: a number with an optional b, k, m, g suffix (case-insensitive).
std::uint64_t parse_size(const std::string& s, const char* flag) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    used = 0;
  }
  std::string unit = s.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit.size() == 2 && unit[1] == 'b') unit.pop_back();
  double mul = unit.empty() || unit == "b" ? 1 : unit == "k" ? 1024.0 : unit == "m" ? 1048576.0
             : unit == "g" ? 1073741824.0 : -1;
  if (used == 0 || mul < 0 || v <= 0 || !std::isfinite(v))
    throw Error(ErrorKind::InvalidArgument, std::string("invalid value for ") + flag + ": " + cbuild::quote(s));
  return static_cast<std::uint64_t>(v * mul);
}

// `image` supplies the defaults (Entrypoint + Cmd, Env, WorkingDir, User); flags override.
int run_in_rootfs(const RunOptions& o, const std::filesystem::path& rootfs, std::vector<std::string> argv,
                  const cbuild::overlay::ImageRuntimeInfo& image = {}) {
  std::vector<std::string> full = image.entrypoint;
  const auto& cmd = argv.empty() ? image.cmd : argv;
  full.insert(full.end(), cmd.begin(), cmd.end());
  if (full.empty()) throw Error(ErrorKind::InvalidArgument, "run: no command given and the image has none");
  cbuild::overlay::RunSpec spec;
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
  if (o.network == "none") spec.network = cbuild::overlay::NetworkMode::None;
  else if (o.network != "host" && o.network != "default")
    throw Error(ErrorKind::InvalidArgument, "run: --network must be host or none, not " + cbuild::quote(o.network));
  if (!o.hostname.empty()) spec.hostname = o.hostname;
  if (!o.memory.empty()) spec.limits.memory_bytes = parse_size(o.memory, "--memory");
  if (o.cpus < 0) throw Error(ErrorKind::InvalidArgument, "run: --cpus must be positive");
  if (o.cpus > 0) spec.limits.cpus = o.cpus;
  if (o.pids_limit < 0) throw Error(ErrorKind::InvalidArgument, "run: --pids-limit must be positive");
  if (o.pids_limit > 0) spec.limits.pids = static_cast<std::uint64_t>(o.pids_limit);
  spec.stdin_fd = 0;
  spec.stdout_fd = 1;
  spec.stderr_fd = 2;
  cbuild::TempDir init;
  cbuild::overlay::InitFilesOptions io;
  io.hostname = spec.hostname;
  io.network = spec.network;
  cbuild::overlay::write_init_files(init.path(), io);
  spec.init_files = init.path();
  std::cout.flush();
  return cbuild::overlay::Sandbox::run(spec).code;
}

cbuild::cli::CommandRegistration reg{{
    .name = "run",
    .help = "Run a command in an image (options end at IMAGE)",
    .setup = [](CLI::App& app, cbuild::cli::GlobalOptions& g) -> std::function<int()> {
      auto o = std::make_shared<RunOptions>();
      // Everything from IMAGE on belongs to the container; nothing may fall through to the
      // top-level parser (which would reject the command's own flags).
      app.prefix_command();
      app.fallthrough(false);
      app.add_option("--root", g.root, "Store root");
      app.add_flag("--rm", o->rm, "Accepted for compatibility: the container is always removed");
      app.add_flag("--rootfs", o->rootfs, "IMAGE is a root filesystem directory");
      app.add_flag("-i,--interactive", o->interactive, "Keep stdin attached (always the case)");
      app.add_flag("-t,--tty", o->tty, "Allocate a pseudo-TTY (not supported)");
      app.add_option("-e,--env", o->env, "Set an environment variable (KEY=VALUE)")->allow_extra_args(false);
      app.add_option("-w,--workdir", o->workdir, "Working directory inside the container");
      app.add_option("-u,--user", o->user, "User (name|uid[:group|gid])");
      app.add_option("--network", o->network, "Network mode: host (default) or none");
      app.add_option("--hostname", o->hostname, "Container host name");
      app.add_option("-m,--memory", o->memory, "Memory limit (e.g. 512m)");
      app.add_option("--cpus", o->cpus, "Number of CPUs (e.g. 1.5)");
      app.add_option("--pids-limit", o->pids_limit, "Maximum number of processes");
      return [o, &app, &g]() -> int {
        std::vector<std::string> rest = app.remaining();
        if (rest.empty()) {
          std::cerr << "cbuild: error: run: an IMAGE is required\nRun 'cbuild run --help' for usage.\n";
          return cbuild::cli::kExitUsage;
        }
        if (o->tty)
          throw Error(ErrorKind::InvalidArgument, "run: -t/--tty is not supported; stdin, stdout and stderr are passed as they are");
        std::string image = rest.front();
        if (!image.empty() && image[0] == '-')
          throw Error(ErrorKind::InvalidArgument, "run: unknown option " + cbuild::quote(image) + " before IMAGE");
        rest.erase(rest.begin());
        if (::geteuid() != 0)
          throw Error(ErrorKind::PermissionDenied, "run: the sandbox needs root (rootless runs are not supported yet)");
        if (o->rootfs) return run_in_rootfs(*o, image, std::move(rest));
        // An image: its snapshots stacked under a throw-away upper, discarded afterwards.
        std::string root = g.resolved_root();
        cbuild::cli::LayoutImage img = cbuild::cli::open_image_arg(image, root);
        // The init files' temp dir goes to this process's scratch in the store, which the next
        // store opener reclaims should this process be killed (as it does the upper below).
        std::optional<cbuild::ProcessScratch> scratch;
        std::error_code no_store;
        if (std::filesystem::is_directory(std::filesystem::path(root) / "tmp", no_store))
          scratch.emplace(std::filesystem::path(root) / "tmp");
        cbuild::overlay::SnapshotStore snapshots(root);
        cbuild::overlay::PreparedSnapshot prepared = cbuild::cli::prepare_image(snapshots, img);
        cbuild::overlay::ActiveMount mount(prepared.mount_spec(), prepared.upper().parent_path() / "merged");
        return run_in_rootfs(*o, mount.target(), std::move(rest), img.runtime);
      };
    }}};

}  // namespace
