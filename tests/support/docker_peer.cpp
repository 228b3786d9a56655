#include "tests/support/docker_peer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <thread>

#include "oci/base/fs.h"
#include "oci/digest.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;

namespace cbuild::test {

namespace {

std::string sock_env(const fs::path& dir) { return "DOCKER_HOST=unix://" + (dir / "docker.sock").string(); }

void stop_pid(int pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return;
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) {
    ::waitpid(pid, nullptr, WNOHANG);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

bool unavailable(const std::string& why) {
  if (in_ci()) FAIL("docker peer: " << why);
  MESSAGE("skipped: docker peer unavailable: " << why);
  return false;
}

}  // namespace

DockerPeer* DockerPeer::get() {
  static std::unique_ptr<DockerPeer> peer;
  static bool tried = false;
  if (tried) return peer.get();
  tried = true;
  if (::geteuid() != 0) return unavailable("needs root") ? nullptr : nullptr;
  if (!fs::exists("/usr/sbin/dockerd") || !fs::exists("/usr/bin/docker"))
    return unavailable("docker.io is not installed (scripts/install-deps.sh installs it)") ? nullptr : nullptr;
  std::unique_ptr<DockerPeer> p(new DockerPeer());
  p->dir_ = "/var/tmp/cbuild-test-dockerd";
  fs::create_directories(p->dir_);
  // One test process at a time owns the shared dockerd: a second one (another checkout's suite)
  // would otherwise stop it below, in the middle of the first one's builds.
  p->lock_fd_ = ::open((p->dir_.string() + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (p->lock_fd_ < 0) return unavailable("cannot open the dockerd lock file") ? nullptr : nullptr;
  if (::flock(p->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    MESSAGE("docker peer: waiting for another test process to finish with " << p->dir_.string());
    if (::flock(p->lock_fd_, LOCK_EX) != 0) return unavailable("cannot lock the dockerd lock file") ? nullptr : nullptr;
  }
  // A dockerd left by a killed earlier run holds the socket and the data dir: stop it.
  if (auto old = read_file_if_exists(p->dir_ / "dockerd.pid")) stop_pid(std::atoi(old->c_str()));
  std::ofstream(p->dir_ / "daemon.json")
      << R"({"features":{"buildkit":true},"storage-driver":"overlay2","iptables":false,"ip6tables":false,)"
      << R"("ip-masq":false,"bridge":"none","userland-proxy":false,"log-level":"warn"})";
  std::fflush(nullptr);  // a child must not inherit (and flush again) buffered test output
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    std::string log = (p->dir_ / "dockerd.log").string();
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    ::dup2(1, 2);
    std::string cfg = (p->dir_ / "daemon.json").string(), data = (p->dir_ / "data").string(),
                exec = (p->dir_ / "exec").string(), pidf = (p->dir_ / "dockerd.pid").string(),
                host = "unix://" + (p->dir_ / "docker.sock").string();
    ::execl("/usr/sbin/dockerd", "dockerd", "--config-file", cfg.c_str(), "--data-root", data.c_str(), "--exec-root",
            exec.c_str(), "--pidfile", pidf.c_str(), "-H", host.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  p->pid_ = pid;
  bool up = false;
  for (int i = 0; i < 150 && !up; ++i) {
    up = run_command({"/usr/bin/docker", "version"}, {}, {sock_env(p->dir_)}).exit_code == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!up) {
    std::string log = read_file_if_exists(p->dir_ / "dockerd.log").value_or("");
    stop_pid(pid);
    return unavailable("dockerd did not start: " + log.substr(log.size() > 2000 ? log.size() - 2000 : 0)) ? nullptr
                                                                                                          : nullptr;
  }
  // The shared base image, unless an earlier run loaded the same tree already.
  TempDir tmp;
  make_busybox_rootfs(tmp.path() / "rootfs");
  p->base_ = "cbuild-test-busybox:" + oci::Digest::of(tree_listing(tmp.path() / "rootfs")).hex().substr(0, 12);
  if (p->docker({"image", "inspect", p->base_}).exit_code != 0) {
    write_docker_archive(tmp.path() / "rootfs", p->base_, tmp.path() / "base.tar");
    CommandResult load = p->docker({"load", "-i", (tmp.path() / "base.tar").string()});
    if (load.exit_code != 0) return unavailable("docker load of the base image failed: " + load.err) ? nullptr : nullptr;
  }
  peer = std::move(p);
  return peer.get();
}

DockerPeer::~DockerPeer() {
  stop_pid(pid_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

CommandResult DockerPeer::docker(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> argv{"/usr/bin/docker"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, input, {sock_env(dir_), "DOCKER_BUILDKIT=1"});
}

DockerBuild DockerPeer::build(const fs::path& context, const fs::path& dockerfile, const fs::path& work,
                              const std::vector<std::string>& extra) {
  DockerBuild out;
  std::string tag = "cbuild-diff:" + std::to_string(::getpid());
  std::vector<std::string> args{"build", "--network=none", "--progress=plain", "-f", dockerfile.string(), "-t", tag};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(context.string());
  out.result = docker(args);
  if (out.result.exit_code != 0) return out;
  fs::create_directories(work);
  fs::path saved = work / "docker-save.tar", unpacked = work / "docker-save";
  CommandResult s = docker({"save", "-o", saved.string(), tag});
  REQUIRE_MESSAGE(s.exit_code == 0, s.err);
  fs::create_directories(unpacked);
  CommandResult x = run_command({"tar", "-xf", saved.string(), "-C", unpacked.string()});
  REQUIRE_MESSAGE(x.exit_code == 0, x.err);
  auto manifest = nlohmann::json::parse(read_file(unpacked / "manifest.json"));
  out.config = nlohmann::json::parse(read_file(unpacked / manifest[0]["Config"].get<std::string>()));
  std::vector<fs::path> layers;
  for (auto& l : manifest[0]["Layers"]) layers.push_back(unpacked / l.get<std::string>());
  out.rootfs = work / "docker-rootfs";
  flatten_layers(layers, out.rootfs);
  docker({"rmi", "-f", tag});
  return out;
}

std::string base_for_test() {
  if (::geteuid() == 0)
    if (auto* d = DockerPeer::get()) return d->base();
  return "cbuild-test-busybox:1";
}

std::vector<std::string> history_created_by(const nlohmann::json& config) {
  std::vector<std::string> out;
  for (const auto& h : config["history"]) out.push_back(h.value("created_by", ""));
  return out;
}

}  // namespace cbuild::test
