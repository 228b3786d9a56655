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
#include <memory>

#include "builder/image_run.h"
#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/layout_image.h"
#include "oci/base/error.h"
#include "overlay/isolation.h"
#include "overlay/snapshot_store.h"
#include "overlay/user_namespace.h"

namespace cbuild::cli {
namespace {

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
    throw Error(ErrorKind::InvalidArgument, std::string("invalid value for ") + flag + ": " + quote(s));
  return static_cast<std::uint64_t>(v * mul);
}

// The flags as the library's options; a bad value is rejected before any work.
builder::ImageRunOptions run_options(const RunOptions& o) {
  builder::ImageRunOptions r;
  r.env = o.env;
  r.workdir = o.workdir;
  r.user = o.user;
  if (o.network == "none") r.network = overlay::NetworkMode::None;
  else if (o.network != "host" && o.network != "default")
    throw Error(ErrorKind::InvalidArgument, "run: --network must be host or none, not " + quote(o.network));
  if (!o.hostname.empty()) r.hostname = o.hostname;
  if (!o.memory.empty()) r.limits.memory_bytes = parse_size(o.memory, "--memory");
  if (o.cpus < 0) throw Error(ErrorKind::InvalidArgument, "run: --cpus must be positive");
  if (o.cpus > 0) r.limits.cpus = o.cpus;
  if (o.pids_limit < 0) throw Error(ErrorKind::InvalidArgument, "run: --pids-limit must be positive");
  if (o.pids_limit > 0) r.limits.pids = static_cast<std::uint64_t>(o.pids_limit);
  return r;
}

CommandRegistration reg{{
    .name = "run",
    .help = "Run a command in an image (options end at IMAGE)",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
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
          return kExitUsage;
        }
        if (o->tty)
          throw Error(ErrorKind::InvalidArgument, "run: -t/--tty is not supported; stdin, stdout and stderr are passed as they are");
        std::string image = rest.front();
        if (!image.empty() && image[0] == '-')
          throw Error(ErrorKind::InvalidArgument, "run: unknown option " + quote(image) + " before IMAGE");
        rest.erase(rest.begin());
        if (::geteuid() != 0)
          throw Error(ErrorKind::PermissionDenied, "run: the sandbox needs root (rootless runs are not supported yet)");
        if (!overlay::current_id_mapping() && !overlay::probe_isolation().cap_sys_admin)
          throw Error(ErrorKind::PermissionDenied,
                      "run: running an image needs CAP_SYS_ADMIN (an overlay mount and new namespaces), which this "
                      "process lacks (as in a container with docker's default capabilities); builds work there with "
                      "--isolation=chroot, running does not — 'cbuild unpack' gives the image's filesystem instead");
        builder::ImageRunOptions ro = run_options(*o);
        if (o->rootfs) return builder::run_in_rootfs(ro, image, rest);
        std::string root = g.resolved_root();
        LayoutImage img = open_image_arg(image, root, g.tls_verify);
        overlay::SnapshotStore snapshots(root);
        return builder::run_in_image(ro, root, prepare_image(snapshots, img), rest, img.runtime);
      };
    }}};

}  // namespace
}  // namespace cbuild::cli
