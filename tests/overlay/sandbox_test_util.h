// Running a command in the sandbox from a test: one busybox rootfs shared by the whole test
// binary (making it is the slow part) and the command's exit status, stdout and stderr.
#pragma once

#include <fcntl.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "oci/base/fs.h"
#include "oci/base/unique_fd.h"
#include "overlay/sandbox.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/busybox_rootfs.h"

namespace cbuild::test {

inline const std::filesystem::path& shared_busybox_rootfs() {
  static TempDir dir;
  static const std::filesystem::path p = [] {
    make_busybox_rootfs(dir.path() / "rootfs");
    return dir.path() / "rootfs";
  }();
  return p;
}

struct Captured {
  overlay::ExitStatus status;
  std::string out, err;
};

// Runs `argv` with `spec` (the shared busybox rootfs when spec.rootfs is empty).
inline Captured run_captured(overlay::RunSpec spec, std::vector<std::string> argv) {
  TempDir tmp;
  UniqueFd out(::open((tmp.path() / "out").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  UniqueFd err(::open((tmp.path() / "err").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (spec.rootfs.empty()) spec.rootfs = shared_busybox_rootfs();
  spec.argv = std::move(argv);
  spec.stdout_fd = out.get();
  spec.stderr_fd = err.get();
  Captured c;
  c.status = overlay::Sandbox::run(spec);
  c.out = read_text(tmp.path() / "out");
  c.err = read_text(tmp.path() / "err");
  return c;
}

inline Captured run_sh(overlay::RunSpec spec, const std::string& script) {
  return run_captured(std::move(spec), {"sh", "-c", script});
}

}  // namespace cbuild::test
