// The sandbox's security policy (docs/security.md): kernel files of /proc and /sys read-only or
// masked, docker's seccomp policy per class of system call, docker's capabilities without
// no_new_privs (setuid programs work), and a PID 1 that shows nothing of cbuild. The escape
// the policy closes (a sysctl written from a RUN) is tried with a harmless proxy: writing
// vm.swappiness's current value back.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "overlay/sandbox.h"
#include "overlay/seccomp_filter.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/overlay/sandbox_test_util.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"
#include "tests/support/tiny_rootfs.h"

namespace fs = std::filesystem;
using cbuild::TempDir;
using cbuild::UniqueFd;
using namespace cbuild::overlay;
using namespace cbuild::test;

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

TEST_CASE("sandbox security: writing a sysctl back fails; /proc's kernel files are read-only mounts [root]") {
  REQUIRE_ROOT();
  std::string value = trim(read_text("/proc/sys/vm/swappiness"));
  REQUIRE(!value.empty());
  RunSpec spec;
  auto c = run_sh(spec, "echo " + value + " > /proc/sys/vm/swappiness && echo WROTE; "
                    "echo " + value + " > /proc/sys/vm/../vm/swappiness && echo WROTE-DOTDOT; "
                    "awk '{print $5, $6}' /proc/self/mountinfo");
  INFO(c.out << c.err);
  CHECK(c.status.code == 0);
  CHECK(c.out.find("WROTE") == std::string::npos);
  CHECK(c.err.find("Read-only file system") != std::string::npos);
  // Each read-only path this kernel has is a mount point of its own, mounted "ro".
  for (const char* p : {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"}) {
    if (!fs::exists(p)) continue;
    CHECK_MESSAGE(c.out.find(std::string(p) + " ro,") != std::string::npos, p);
  }

  // The same through a setuid-root program started by an unprivileged user (no_new_privs is
  // not set, so the setuid bit works — and still the write fails).
  TempDir dir;
  fs::path root = dir.path() / "rootfs";
  make_tiny_rootfs(root);
  fs::copy_file(root / "bin/probe", root / "bin/cbuild_probe");
  REQUIRE(::chmod((root / "bin/cbuild_probe").c_str(), 04755) == 0);
  spec.rootfs = root;
  spec.user = "user";
  c = run_captured(spec, {"/bin/cbuild_probe", "creds"});
  CHECK(c.out == "uid=1234 euid=0\n");
  c = run_captured(spec, {"/bin/cbuild_probe", "write", "/proc/sys/vm/swappiness", value});
  CHECK(c.status.code == 1);
  CHECK(c.err.find("Read-only file system") != std::string::npos);
}

TEST_CASE("sandbox security: masked kernel files read empty [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  std::string script;
  int checked = 0;
  // Only paths that exist here and show something on the host prove anything.
  for (const char* f : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"}) {
    if (!fs::exists(f)) continue;
    script += "echo " + std::string(f) + " $(cat " + f + " 2>/dev/null | wc -c); ";
    ++checked;
  }
  for (const char* d : {"/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware", "/sys/devices/virtual/powercap"}) {
    if (!fs::is_directory(d) || fs::is_empty(d)) continue;
    script += "echo " + std::string(d) + " $(ls -A " + d + " | wc -l); ";
    ++checked;
  }
  REQUIRE(checked >= 2);
  auto c = run_sh(spec, script);
  INFO(c.out << c.err);
  CHECK(c.status.code == 0);
  std::istringstream in(c.out);
  std::string path, count;
  int seen = 0;
  while (in >> path >> count) {
    CHECK_MESSAGE(count == "0", path);
    ++seen;
  }
  CHECK(seen == checked);
  // A masked directory cannot be written either.
  c = run_sh(spec, "touch /sys/firmware/x 2>/dev/null && echo WROTE; true");
  CHECK(c.out == "");
}

TEST_CASE("sandbox security: device nodes a RUN makes cannot be opened; /dev's own nodes work [root]") {
  REQUIRE_ROOT();
  // The harmless proxy for a node of the host's disk: a new node of the null device (1:3),
  // which opens on the host. mknod itself works, as in docker (the node lands in the layer).
  TempDir cache;
  RunSpec spec;
  spec.binds = {{cache.path(), "/cache", false}};
  auto c = run_sh(spec,
              "for d in /tmp /dev /cache; do mknod $d/n c 1 3 && echo made $d; "
              "echo x > $d/n && echo OPENED $d; done; "
              "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c; "
              "rm /tmp/n");  // the rootfs is shared by the test binary: leave it as it was
  INFO(c.out << c.err);
  CHECK(c.status.code == 0);
  for (const char* d : {"/tmp", "/dev", "/cache"}) CHECK(c.out.find(std::string("made ") + d) != std::string::npos);
  CHECK(c.out.find("OPENED") == std::string::npos);
  CHECK(c.err.find("Permission denied") != std::string::npos);
  CHECK(c.out.find("4\n4\n") != std::string::npos);
  struct stat st {};
  REQUIRE(::lstat((cache.path() / "n").c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
}

TEST_CASE("sandbox security: docker's seccomp policy, class by class, for root and for a user [root]") {
  REQUIRE_ROOT();
  CHECK(default_seccomp_filter().size() > 100);
  TempDir dir;
  fs::path root = dir.path() / "rootfs";
  make_tiny_rootfs(root);
  RunSpec spec;
  spec.rootfs = root;
  // Each denied class answers EPERM (unfiltered, root would get ok, EFAULT, EBADF…); clone3,
  // a call newer than the policy (fchmodat2) and no call at all answer ENOSYS, so a libc falls
  // back; what docker allows stays allowed.
  const std::string expected =
      "unshare-user=EPERM\nclone-newuser=EPERM\nmount=EPERM\nsetns=EPERM\nkeyctl=EPERM\nadd_key=EPERM\n"
      "bpf=EPERM\nperf_event_open=EPERM\nkexec_load=EPERM\ninit_module=EPERM\npersonality-odd=EPERM\n"
      "socket-vsock=EPERM\nclone3=ENOSYS\nfchmodat2=ENOSYS\nnosys=ENOSYS\n"
      "clone-plain=ok\nsocket-inet=ok\npersonality-query=ok\nchroot=ok\n";
  std::vector<std::string> argv{"/bin/probe", "syscall"};
  std::istringstream in(expected);
  for (std::string line; std::getline(in, line);) argv.push_back(line.substr(0, line.find('=')));
  auto c = run_captured(spec, argv);
  INFO(c.err);
  CHECK(c.status.code == 0);
  CHECK(c.out == expected);

  // An unprivileged user is filtered the same (the filter is loaded before root is given up).
  spec.user = "user";
  std::vector<std::string> some{"/bin/probe", "syscall", "unshare-user", "keyctl", "clone3", "clone-plain"};
  c = run_captured(spec, some);
  CHECK(c.out == "unshare-user=EPERM\nkeyctl=EPERM\nclone3=ENOSYS\nclone-plain=ok\n");
}

TEST_CASE("sandbox security: seccomp mode 2, docker's capabilities, no no_new_privs; glibc programs run [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  auto c = run_sh(spec, "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; "
                    "ls / >/dev/null && cp /bin/busybox /tmp/b && chown 1000 /tmp/b && echo fine");
  INFO(c.err);
  CHECK(c.status.code == 0);
  CHECK(c.out ==
        "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n"
        "CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\nfine\n");
  spec.user = "app";
  c = run_sh(spec, "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp:)' /proc/self/status");
  CHECK(c.out == "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\n");
}

TEST_CASE("sandbox security: PID 1 shows no builder argv nor environment [root]") {
  REQUIRE_ROOT();
  // PID 1 is a clone of this process: without care it shows this binary's argv and env.
  ::setenv("CBUILD_TEST_PID1_SECRET", "token-that-must-not-leak", 1);
  RunSpec spec;
  spec.env = {"VISIBLE=1"};
  // NUL-padded to the length of the overwritten arguments: only the NULs are dropped here.
  auto c = run_sh(spec, "tr -d '\\0' < /proc/1/cmdline; echo; cat /proc/1/comm; "
                    "cat /proc/1/environ 2>/dev/null | wc -c");
  ::unsetenv("CBUILD_TEST_PID1_SECRET");
  INFO(c.err);
  CHECK(c.status.code == 0);
  CHECK(c.out == "cbuild-init\ncbuild-init\n0\n");
  CHECK(c.out.find("token-that-must-not-leak") == std::string::npos);
}
