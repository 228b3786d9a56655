// What a RUN (and `cbuild run`) can see and do of the host, through the real binary: the
// sysctl escape closed, seccomp on, PID 1 showing none of cbuild's argv or environment, the
// sandbox dying with a cbuild killed by SIGKILL — and the same answers as docker build gives.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace std::chrono_literals;

namespace {

std::string swappiness() {
  std::string v = test::read_text("/proc/sys/vm/swappiness");
  while (!v.empty() && v.back() == '\n') v.pop_back();
  return v;
}

// The RUN script that records what the policy decides, into files of the image. Not
// socket-vsock: docker 20.10's BuildKit still allows AF_VSOCK, which docker's current profile
// and cbuild deny (docs/security.md; tests/overlay/sandbox_security_test.cpp covers it).
const char* kSyscallClasses =
    "unshare-user clone-newuser mount setns keyctl add_key bpf perf_event_open kexec_load init_module "
    "personality-odd clone3 nosys clone-plain socket-inet personality-query chroot";

std::string record_policy_script() {
  return std::string("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status > /status; "
                     "/bin/probe syscall ") +
         kSyscallClasses + " > /syscalls; " +
         "(echo " + swappiness() + " > /proc/sys/vm/swappiness) 2>/dev/null && echo writable > /sysctl || "
         "echo refused > /sysctl; "
         "for f in /proc/keys /proc/timer_list /proc/kcore; do (wc -c < $f || echo none) 2>/dev/null; done > /masked; "
         "ls -A /sys/firmware | wc -l >> /masked";
}

// Unmounts whatever a killed cbuild left mounted under `root`.
void unmount_under(const fs::path& root) {
  for (int round = 0; round < 8; ++round) {
    auto lines = test::mounts_mentioning(root.string());
    if (lines.empty()) return;
    for (const auto& l : lines) {
      std::istringstream in(l);
      std::string id, parent, dev, r, mnt;
      in >> id >> parent >> dev >> r >> mnt;
      if (mnt.rfind(root.string(), 0) == 0) ::umount2(mnt.c_str(), MNT_DETACH);
    }
  }
}

}  // namespace

TEST_CASE("cbuild run: seccomp on, sysctls read-only [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path rootfs = tmp.path() / "rootfs";
  test::make_busybox_rootfs(rootfs);
  auto r = test::run_cbuild({"run", "--rootfs", rootfs.string(), "sh", "-c",
                             "grep -E '^(NoNewPrivs|Seccomp:)' /proc/self/status; echo " + swappiness() +
                                 " > /proc/sys/vm/swappiness && echo WROTE; /bin/probe syscall unshare-user"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "NoNewPrivs:\t0\nSeccomp:\t2\nunshare-user=EPERM\n");
  CHECK(r.err.find("Read-only file system") != std::string::npos);
}

TEST_CASE("build: a RUN sees neither cbuild's argv (build args) nor its environment in /proc/1 [root]") {
  REQUIRE_ROOT();
  test::BuildProject p("cbuild-test-busybox:1");
  p.file("Dockerfile",
         "FROM cbuild-test-busybox:1\nARG SECRET\n"
         "RUN tr -d '\\0' < /proc/1/cmdline > /cmdline; cat /proc/1/comm > /comm; "
         "(cat /proc/1/environ > /environ) 2>/dev/null; true\n");
  auto r = p.build({"--build-arg", "SECRET=xyz-build-arg-value", "-t", "pid1:1"},
                   {"CBUILD_TEST_TOKEN=env-token-value"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [config, tree] = p.image("docker.io/library/pid1:1", p.dir.path() / "out" / "rootfs");
  CHECK(read_file(tree / "cmdline") == "cbuild-init");
  CHECK(read_file(tree / "comm") == "cbuild-init\n");
  std::string environ = fs::exists(tree / "environ") ? read_file(tree / "environ") : "";
  CHECK(environ.find("env-token-value") == std::string::npos);
  CHECK(environ.find("xyz-build-arg-value") == std::string::npos);
  CHECK(environ == "");
}

TEST_CASE("build: the RUN dies with a cbuild killed by SIGKILL [root]") {
  REQUIRE_ROOT();
  test::BuildProject p;
  std::string token = "cbuild-pdeath-" + std::to_string(::getpid());
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo run\"\"ning-" + token + " && while :; do echo x >> /marker; sleep 0.1; done # " + token + "\n");
  auto build = p.start({"-t", "pdeath:1"});
  REQUIRE_MESSAGE(build.wait_for_err({"running-" + token}, 60s), build.err());
  REQUIRE(!test::processes_mentioning(token).empty());
  // Only cbuild itself, not its process group: nothing but the kernel tells the sandbox.
  REQUIRE(::kill(build.pid(), SIGKILL) == 0);
  auto status = build.wait(10s);
  CHECK(status == 128 + SIGKILL);
  auto until = std::chrono::steady_clock::now() + 5s;
  while (!test::processes_mentioning(token).empty() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(50ms);
  auto left = test::processes_mentioning(token);
  CHECK_MESSAGE(left.empty(), test::lines(left));
  unmount_under(p.dir.path());
}

TEST_CASE("build: a RUN's capabilities, seccomp answers and kernel files match docker build's [root]") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  test::BuildProject p(docker->base());
  p.file("Dockerfile", "FROM " + p.base + "\nRUN " + record_policy_script() + "\n");
  auto r = p.build({"-t", "policy:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [config, mine] = p.image("docker.io/library/policy:1", p.dir.path() / "out" / "rootfs");
  TempDir work;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  for (const char* f : {"status", "syscalls", "sysctl", "masked"}) {
    INFO(f);
    CHECK(read_file(mine / f) == read_file(b.rootfs / f));
  }
  CHECK(read_file(mine / "sysctl") == "refused\n");
  CHECK(read_file(mine / "status").find("Seccomp:\t2\n") != std::string::npos);
}
