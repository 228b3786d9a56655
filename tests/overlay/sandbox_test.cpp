#include "overlay/sandbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/active_mount.h"
#include "overlay/cgroup.h"
#include "overlay/differ.h"
#include "overlay/init_layer.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/overlay/sandbox_test_util.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"
#include "tests/support/tiny_rootfs.h"

namespace fs = std::filesystem;
using cbuild::Error;
using cbuild::ErrorKind;
using cbuild::TempDir;
using cbuild::UniqueFd;
using namespace cbuild::overlay;
using namespace cbuild::test;

TEST_CASE("sandbox: exit status, signals, stdout and stderr [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  auto c = run_sh(spec, "echo out; echo err >&2; exit 7");
  CHECK(c.status.code == 7);
  CHECK(c.status.signal == 0);
  CHECK(c.out == "out\n");
  CHECK(c.err == "err\n");
  c = run_sh(spec, "kill -9 $$");
  CHECK(c.status.code == 137);
  CHECK(c.status.signal == 9);
  CHECK(run_sh(spec, "true").status.ok());
  CHECK_FALSE(has_mounts_under(shared_busybox_rootfs()));
}

TEST_CASE("sandbox: namespaces, environment, user, cwd, umask [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  spec.env = {"FOO=bar baz"};
  spec.hostname = "builder1";
  spec.cwd = "/work/dir";
  spec.user = "app";
  auto c = run_sh(spec,
                  "echo \"$FOO|$HOME|$PATH\"; pwd; id -u; id -g; id -G; hostname; umask; echo $$");
  CHECK(c.status.code == 0);
  CHECK(c.err == "");
  CHECK(c.out ==
        "bar baz|/home/app|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "/work/dir\n1000\n1000\n1000 1500\nbuilder1\n0022\n2\n");
}

TEST_CASE("sandbox: /dev, /proc, /sys, capabilities [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  auto c = run_sh(spec,
                  "for n in null zero full random urandom tty; do test -c /dev/$n || echo no $n; done; "
                  "test -L /dev/ptmx && test -d /dev/pts && test -d /dev/shm && test -L /dev/fd || echo links; "
                  "echo x > /dev/null || echo null; "
                  "touch /sys/x 2>/dev/null && echo sys-writable; "
                  "test -r /proc/self/status || echo proc; "
                  "grep CapBnd /proc/self/status; "
                  "n=$(ls /proc | grep -c '^[0-9]'); [ $n -le 5 ] && echo own-pids");
  CHECK(c.err == "");
  // Docker's default set: bits 0,1,3,4,5,6,7,8,10,13,18,27,29,31.
  // Only this namespace's processes are visible (pid 1, sh and the pipeline), not the host's.
  CHECK(c.out == "CapBnd:\t00000000a80425fb\nown-pids\n");
}

TEST_CASE("sandbox: network none has only lo, up; host network sees the host's [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  spec.network = NetworkMode::None;
  auto c = run_sh(spec, "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
  CHECK(c.status.code == 0);
  CHECK(c.out.rfind("lo\n", 0) == 0);
  CHECK(c.out.find("0x9") != std::string::npos);  // IFF_UP | IFF_LOOPBACK
  spec.network = NetworkMode::Host;
  c = run_sh(spec, "ls /sys/class/net");
  // The host's interfaces are visible (interfaces may come and go meanwhile: check one).
  std::string host_iface;
  for (const auto& d : fs::directory_iterator("/sys/class/net"))
    if (d.path().filename() != "lo" && fs::exists(d.path() / "device")) host_iface = d.path().filename();
  if (!host_iface.empty()) CHECK(c.out.find(host_iface + "\n") != std::string::npos);
  CHECK(c.out.find("lo\n") != std::string::npos);
}

TEST_CASE("sandbox: failures before exec are clear errors [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  spec.rootfs = shared_busybox_rootfs();
  spec.argv = {"no-such-command"};
  CHECK_THROWS_WITH_AS(Sandbox::run(spec), doctest::Contains("executable file not found in $PATH"), Error);
  spec.argv = {"/bin/none"};
  try {
    Sandbox::run(spec);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::NotFound);
  }
  spec.argv = {"true"};
  spec.user = "ghost";
  CHECK_THROWS_WITH_AS(Sandbox::run(spec), doctest::Contains("unable to find user ghost"), Error);
  spec.user = "";
  spec.rootfs = shared_busybox_rootfs() / "nope";
  CHECK_THROWS_WITH_AS(Sandbox::run(spec), doctest::Contains("nope"), Error);
  spec.rootfs = shared_busybox_rootfs();
  spec.argv = {};
  CHECK_THROWS_AS(Sandbox::run(spec), Error);
  CHECK_FALSE(has_mounts_under(shared_busybox_rootfs()));
}

TEST_CASE("sandbox: timeout kills the whole tree; pid 1 forwards SIGTERM and reaps [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  spec.rootfs = shared_busybox_rootfs();
  spec.argv = {"sh", "-c", "sleep 30 & sleep 30 & sleep 30"};
  spec.timeout = std::chrono::milliseconds(300);
  auto t0 = std::chrono::steady_clock::now();
  try {
    Sandbox::run(spec);
    FAIL("expected a timeout");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Timeout);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  spec.timeout.reset();
  // SIGTERM sent to PID 1 reaches the command, which traps it.
  auto c = run_sh(spec, "trap 'echo got; exit 3' TERM; (sleep 0.2; kill -TERM 1) & sleep 5 & wait $!");
  CHECK(c.status.code == 3);
  CHECK(c.out == "got\n");
  // An orphaned grandchild is reaped by PID 1 (no zombie stays in the ps list).
  c = run_sh(spec, "(sh -c 'exit 0' &); sleep 0.1; "
                   "for i in $(seq 50); do ps -o stat | grep -q '^Z' || break; sleep 0.1; done; "
                   "ps -o stat,comm | grep -c '^Z' || true");
  CHECK(c.out == "0\n");
}

TEST_CASE("sandbox: init files and bind mounts; edits never reach the rootfs [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path rootfs = tmp.path() / "rootfs";
  make_busybox_rootfs(rootfs);
  InitFilesOptions io;
  io.hostname = "box7";
  write_init_files(tmp.path() / "init", io);
  write_text(tmp.path() / "data/in", "bound");
  RunSpec spec;
  spec.rootfs = rootfs;
  spec.hostname = "box7";
  spec.init_files = tmp.path() / "init";
  spec.binds = {{tmp.path() / "data", "/mnt/data", true}};
  spec.tmpfs = {{"/scratch"}};
  auto c = run_sh(spec, "grep -c box7 /etc/hosts; cat /etc/hostname; cat /mnt/data/in; "
                        "echo more >> /etc/hosts; touch /mnt/data/x 2>/dev/null || echo ro; "
                        "echo t > /scratch/t && grep -c ' /scratch tmpfs' /proc/mounts");
  CHECK(c.err == "");
  CHECK(c.out == "1\nbox7\nboundro\n1\n");
  CHECK(fs::is_empty(rootfs / "scratch"));  // the tmpfs content went away with the run
  CHECK(read_text(tmp.path() / "init/etc/hosts").find("more") != std::string::npos);
  // The stubs are plain empty files in the rootfs; the edit went to the host copy.
  CHECK(read_text(rootfs / "etc/hosts") == "");
  CHECK(fs::is_directory(rootfs / "mnt/data"));
  CHECK_FALSE(fs::exists(rootfs / "mnt/data/in"));
  auto stubs = Sandbox::stub_paths(spec);
  CHECK(std::find(stubs.begin(), stubs.end(), "etc/hosts") != stubs.end());
  CHECK(std::find(stubs.begin(), stubs.end(), "mnt/data") != stubs.end());
  CHECK_FALSE(has_mounts_under(tmp.path()));
}

TEST_CASE("sandbox: a RUN in an overlay: the upper holds only the change [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::create_directories(tmp.path() / "upper");
  fs::create_directories(tmp.path() / "work");
  fs::path init = tmp.path() / "init";
  write_init_files(init, {});
  MountSpec ms{.lowers = {shared_busybox_rootfs().string()}, .upper = (tmp.path() / "upper").string(),
               .work = (tmp.path() / "work").string()};
  RunSpec spec;
  spec.init_files = init;
  {
    ActiveMount m(ms, tmp.path() / "merged");
    spec.rootfs = m.target();
    auto c = run_sh(spec, "echo hi > /root/greeting; echo 1.2.3.4 x >> /etc/hosts");
    CHECK(c.status.code == 0);
  }
  CHECK_FALSE(has_mounts_under(tmp.path()));
  DiffOptions opt;
  opt.exclude = Sandbox::stub_paths(spec);
  std::vector<std::string> paths;
  walk_diff(tmp.path() / "upper", opt, [&](const cbuild::oci::TarEntry& e, int) { paths.push_back(e.path); });
  // busybox's rootfs has /etc but no /etc/hosts: the stub is excluded, /etc stays (copied-up
  // parent of the stub) — and /root/greeting is the real change.
  CHECK(std::find(paths.begin(), paths.end(), "root/greeting") != paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "etc/hosts") == paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "proc") == paths.end());
}

TEST_CASE("sandbox: cgroup limits on this host's layout [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  spec.limits.pids = 8;
  spec.limits.memory_bytes = 64u << 20;
  spec.limits.cpus = 0.5;
  auto c = run_sh(spec, "grep -c cbuild/run- /proc/self/cgroup; "
                        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait; echo done");
  // One line per cgroup directory: 3 on a hybrid host (v1 memory, cpu, pids), 1 on pure v2.
  std::size_t dirs = Cgroup(spec.limits).dirs().size();
  CHECK(c.out.rfind(std::to_string(dirs) + "\n", 0) == 0);
  CHECK(c.err.find("fork") != std::string::npos);  // the pids limit refused some forks
  // The memory limit is enforced: a 200 MiB buffer under a 32 MiB limit gets the OOM killer.
  RunSpec small;
  small.limits.memory_bytes = 32u << 20;
  auto oom = run_sh(small, "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null; echo $?");
  CHECK(oom.out == "137\n");
  // Every cgroup directory of the run is gone.
  CgroupLayout l = detect_cgroup_layout();
  for (const auto& [name, mount] : l.v1) {
    if (!fs::exists(mount / "cbuild")) continue;
    for (const auto& d : fs::directory_iterator(mount / "cbuild"))
      CHECK_MESSAGE(d.path().filename().string().find("run-" + std::to_string(::getpid()) + "-") != 0, d.path());
  }
}

TEST_CASE("sandbox: a static program in a shell-less rootfs; user:group by name [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  make_tiny_rootfs(tmp.path() / "r");
  RunSpec spec;
  spec.rootfs = tmp.path() / "r";
  spec.user = "user:staff";
  UniqueFd out(::open((tmp.path() / "out").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  spec.stdout_fd = out.get();
  spec.argv = {"id"};
  CHECK(Sandbox::run(spec).code == 0);
  // user is a member of staff, but an explicit group is the whole group set (runc's rule).
  CHECK(read_text(tmp.path() / "out") == "uid=1234 gid=50 groups=\n");
  spec.argv = {"probe", "exit", "42"};
  CHECK(Sandbox::run(spec).code == 42);
  spec.argv = {"/bin/probe", "kill-self", "15"};
  ExitStatus st = Sandbox::run(spec);
  CHECK(st.signal == 15);
  CHECK(st.code == 143);
  CHECK_FALSE(has_mounts_under(tmp.path()));
}

TEST_CASE("sandbox: cancellation kills the tree and throws Cancelled [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  spec.rootfs = shared_busybox_rootfs();
  spec.argv = {"sh", "-c", "sleep 30 & sleep 30"};
  std::thread canceller([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cbuild::request_cancel();
  });
  auto t0 = std::chrono::steady_clock::now();
  try {
    Sandbox::run(spec);
    FAIL("expected a cancel");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Cancelled);
  }
  canceller.join();
  cbuild::cancel_signal().store(0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  CHECK(Sandbox::run(RunSpec{.rootfs = shared_busybox_rootfs(), .argv = {"true"}}).ok());
}

TEST_CASE("sandbox: no way back to the host through /proc/1 or a leaked fd cwd [root]") {
  REQUIRE_ROOT();
  RunSpec spec;
  // PID 1 is a clone of this process: its exe, fds and memory must be off limits.
  auto c = run_sh(spec, "readlink /proc/1/exe || echo no-exe; ls /proc/1/fd | wc -l; "
                        "for f in /proc/1/fd/*; do readlink $f && echo LEAK; done; "
                        "cat /proc/1/environ >/dev/null 2>&1 || echo no-environ");
  // Only the status pipe and the two output files stay open in PID 1 (the socket closes at fork).
  INFO(c.out);
  CHECK(c.out.rfind("no-exe\n3\n", 0) == 0);
  CHECK(c.out.find("LEAK") == std::string::npos);
  CHECK(c.out.find("no-environ") != std::string::npos);
  // WORKDIR /proc/self/fd/N (CVE-2024-21626): refused or inside the root, never on the host.
  for (int fd = 3; fd < 12; ++fd) {
    spec.cwd = "/proc/self/fd/" + std::to_string(fd);
    try {
      c = run_sh(spec, "pwd; ls / | grep -c busybox-rootfs-marker; test -e /bin/busybox && echo inside");
      CHECK(c.out.find("inside") != std::string::npos);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("chdir") != std::string::npos);
    }
  }
}

TEST_CASE("sandbox: symlinked /proc, /dev or a bind over the root are refused [root]") {
  REQUIRE_ROOT();
  for (const char* which : {"proc", "dev"}) {
    TempDir tmp;
    make_tiny_rootfs(tmp.path() / "r");
    fs::remove(tmp.path() / "r" / which);
    fs::create_symlink("/", tmp.path() / "r" / which);
    RunSpec spec;
    spec.rootfs = tmp.path() / "r";
    spec.argv = {"true"};
    CHECK_THROWS_WITH_AS(Sandbox::run(spec), doctest::Contains("is a symlink in the image"), Error);
    CHECK_FALSE(has_mounts_under(tmp.path()));
  }
  TempDir tmp;
  make_tiny_rootfs(tmp.path() / "r");
  fs::create_symlink("/", tmp.path() / "r/up");
  RunSpec spec;
  spec.rootfs = tmp.path() / "r";
  spec.argv = {"true"};
  spec.binds = {{tmp.path(), "/up", false}};
  CHECK_THROWS_WITH_AS(Sandbox::run(spec), doctest::Contains("root directory itself"), Error);
}

TEST_CASE("sandbox: bind targets and stubs behind hostile symlinks stay inside the root [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path host = tmp.path() / "host";
  fs::create_directories(host);
  make_tiny_rootfs(tmp.path() / "r");
  fs::create_symlink(host, tmp.path() / "r/evil");               // absolute, to the host
  fs::create_symlink("../../../../../..", tmp.path() / "r/up");  // climbs
  fs::remove(tmp.path() / "r/etc/passwd");
  fs::create_symlink(host / "passwd", tmp.path() / "r/etc/hosts");  // init file via a link
  write_text(tmp.path() / "src/f", "bound");
  fs::path init = tmp.path() / "init";
  write_init_files(init, {});
  RunSpec spec;
  spec.rootfs = tmp.path() / "r";
  spec.argv = {"cat", "/evil/mnt/f"};
  spec.binds = {{tmp.path() / "src", "evil/mnt", true}, {tmp.path() / "src", "up/other", true}};
  spec.init_files = init;
  UniqueFd out(::open((tmp.path() / "out").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  spec.stdout_fd = out.get();
  CHECK(Sandbox::run(spec).code == 0);
  CHECK(read_text(tmp.path() / "out") == "bound");
  CHECK(fs::is_empty(host));  // nothing created on the host
  CHECK(fs::is_directory(tmp.path() / "r" / host.relative_path() / "mnt"));  // the stub, inside
  CHECK(fs::is_directory(tmp.path() / "r/other"));
  CHECK_FALSE(has_mounts_under(tmp.path()));
}

TEST_CASE("sandbox: an fd bind keeps what was resolved; secrets are read-only files of a private tmpfs; tmpfs size [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  write_text(tmp.path() / "src/f", "resolved");
  UniqueFd src(::open((tmp.path() / "src").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  REQUIRE(src.get() >= 0);
  // The path is swapped for a symlink after resolving: the bind must not follow it.
  fs::rename(tmp.path() / "src", tmp.path() / "moved");
  fs::create_symlink("/etc", tmp.path() / "src");
  fs::path rootfs = tmp.path() / "rootfs";
  fs::create_directories(rootfs);
  fs::copy(shared_busybox_rootfs(), rootfs, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  RunSpec spec;
  spec.rootfs = rootfs;
  spec.binds = {{.source = tmp.path() / "src", .target = "/fdbind", .readonly = true, .source_fd = src.get()}};
  spec.secrets = {{.target = "/run/secrets/tok", .content = "s3cret-value", .mode = 0440, .uid = 1000, .gid = 1000}};
  spec.tmpfs = {{.target = "/small", .size_bytes = 1u << 20}};
  auto c = run_sh(spec, "cat /fdbind/f; echo; stat -c '%a %u %g' /run/secrets/tok; cat /run/secrets/tok; echo; "
                        "(echo x > /run/secrets/tok) 2>/dev/null || echo ro; "
                        "grep ' /run/secrets/tok ' /proc/mounts | grep -c 'tmpfs ro,nosuid,nodev,noexec'; "
                        "grep ' /small ' /proc/mounts | grep -o 'size=[0-9a-z]*'");
  CHECK(c.err == "");
  CHECK(c.out == "resolved\n440 1000 1000\ns3cret-value\nro\n1\nsize=1024k\n");
  CHECK(read_text(rootfs / "run/secrets/tok") == "");  // only the empty stub is on disk
  CHECK_FALSE(has_mounts_under(tmp.path()));

  auto listed = [](const std::vector<std::string>& v, const char* p) { return std::find(v.begin(), v.end(), p) != v.end(); };
  auto stubs = Sandbox::stub_paths(spec);
  CHECK(listed(stubs, "fdbind"));
  CHECK(listed(stubs, "small"));
  CHECK(listed(stubs, "run/secrets/tok"));
  spec.keep_directory_stubs = true;  // docker 20.10: directory mount points stay in the layer
  stubs = Sandbox::stub_paths(spec);
  CHECK_FALSE(listed(stubs, "fdbind"));
  CHECK_FALSE(listed(stubs, "small"));
  CHECK(listed(stubs, "run/secrets/tok"));
}

TEST_CASE("sandbox: binds and tmpfs under /dev land on the /dev tmpfs, never through its symlinks [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path rootfs = tmp.path() / "rootfs";
  make_busybox_rootfs(rootfs);
  write_text(tmp.path() / "dir/script", "x");
  write_text(tmp.path() / "file", "f");
  RunSpec spec;
  spec.rootfs = rootfs;
  spec.binds = {{tmp.path() / "dir", "/dev/pipes", true}, {tmp.path() / "file", "/dev/a/b/file", true}};
  spec.tmpfs = {{"/dev/scratch"}};
  auto c = run_sh(spec, "cat /dev/pipes/script /dev/a/b/file; echo t > /dev/scratch/t && cat /dev/scratch/t; "
                        "test -c /dev/null && echo null-ok");
  CHECK(c.err == "");
  CHECK(c.out == "xft\nnull-ok\n");
  // Nothing was made in the image's /dev: the mount points lived on the tmpfs.
  CHECK_FALSE(fs::exists(rootfs / "dev/pipes"));
  CHECK_FALSE(fs::exists(rootfs / "dev/a"));
  CHECK_FALSE(has_mounts_under(tmp.path()));
  // /dev/fd is the sandbox's symlink to /proc/self/fd: a mount point below it is refused.
  RunSpec through = spec;
  through.tmpfs.clear();
  through.binds = {{tmp.path() / "file", "/dev/fd/x", true}};
  try {
    run_sh(through, "true");
    FAIL("a mount point below /dev/fd was accepted");
  } catch (const Error& e) {
    CHECK_MESSAGE(std::string(e.what()).find("/dev/fd/x") != std::string::npos, e.what());
  }
  CHECK_FALSE(has_mounts_under(tmp.path()));
}
