// `cbuild run` end to end (the sandbox itself is tested in tests/overlay/sandbox_test.cpp).
#include <filesystem>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using cbuild::test::run_cbuild;

TEST_CASE("cbuild run --rootfs: options end at IMAGE, exit code passes through [root]") {
  REQUIRE_ROOT();
  cbuild::TempDir tmp;
  fs::path rootfs = tmp.path() / "rootfs";
  cbuild::test::make_busybox_rootfs(rootfs);
  auto r = run_cbuild({"run", "--rm", "--rootfs", "-e", "A=1", "-e", "B=2", "--hostname", "hh", "-u", "app",
                       rootfs.string(), "sh", "-c", "echo $A$B -e --rm; hostname; id -u; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "12 -e --rm\nhh\n1000\n");
  r = run_cbuild({"run", "--rootfs", "--network", "none", rootfs.string(), "ls", "/sys/class/net"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "lo\n");
  r = run_cbuild({"run", "--rootfs", rootfs.string(), "no-such-program"});
  CHECK(r.exit_code == 1);
  CHECK(r.err == "cbuild: error: sandbox: exec \"no-such-program\": executable file not found in $PATH\n");
  r = run_cbuild({"run", "--rootfs", "--memory", "12q", rootfs.string(), "true"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("--memory") != std::string::npos);
  r = run_cbuild({"run"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("IMAGE is required") != std::string::npos);
  r = run_cbuild({"run", "--rootfs", "--memory", "64m", "--pids-limit", "50", "--cpus", "1", rootfs.string(),
                  "sh", "-c", "exit 0"});
  CHECK(r.exit_code == 0);
}
