#include "tests/support/docker_peer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "oci/base/fs.h"
#include "oci/base/unique_fd.h"
#include "oci/digest.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;

namespace cbuild::test {

namespace {

const fs::path kDir = "/var/tmp/cbuild-test-dockerd";
const fs::path kLock = "/var/tmp/cbuild-test-dockerd.lock";
const fs::path kKeep = kDir / "keep";  // the ctest fixture stops the daemon, not its users

std::string sock_env() { return "DOCKER_HOST=unix://" + (kDir / "docker.sock").string(); }

// A zombie counts as gone: the daemon may be the unreaped child of a test process still running.
bool alive(int pid) {
  auto stat = read_file_if_exists("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  auto paren = stat->rfind(") ");
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] != 'Z';
}

// The dockerd the pid file names, or -1. A pid file left by a killed run may name a pid the
// kernel has given to another program since: only a live "dockerd" counts.
int daemon_pid() {
  auto text = read_file_if_exists(kDir / "dockerd.pid");
  int pid = text ? std::atoi(text->c_str()) : -1;
  if (pid <= 0 || !alive(pid)) return -1;
  return read_file_if_exists("/proc/" + std::to_string(pid) + "/comm").value_or("") == "dockerd\n" ? pid : -1;
}

// The HTTP status of a GET of `path` from the daemon's API, or -1 when it does not answer.
// Spoken directly: the docker CLI would cost a fifth of a second a call, in every case.
int api_status(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return -1;
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock = (kDir / "docker.sock").string();
  if (sock.size() >= sizeof addr.sun_path) return -1;
  std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: docker\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return -1;
  char head[64];
  ssize_t n = ::recv(fd.get(), head, sizeof head - 1, 0);
  if (n < 12) return -1;
  head[n] = '\0';
  int status = -1;
  return std::sscanf(head, "HTTP/%*d.%*d %d", &status) == 1 ? status : -1;
}

bool answers() { return api_status("/_ping") == 200; }

// The base's tag for this binary, the probe and busybox as they are on disk: making the tree
// to hash it would cost every case a fifth of a second. Any rebuild changes the key, so a tag
// computed from other files is never used.
std::string base_tag() {
  std::string key;
  for (const fs::path& f : {fs::path("/proc/self/exe"), fs::path(CBUILD_PROBE_BINARY), fs::path("/bin/busybox")}) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      key.clear();
      break;
    }
    key += std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + " " + std::to_string(st.st_size) + " " +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "\n";
  }
  fs::path cached = kDir / "base-tags" / oci::Digest::of(key).hex();
  if (!key.empty())
    if (auto tag = read_file_if_exists(cached)) return *tag;
  TempDir tmp;
  make_busybox_rootfs(tmp.path() / "rootfs");
  std::string tag = "cbuild-test-busybox:" + oci::Digest::of(tree_listing(tmp.path() / "rootfs")).hex().substr(0, 12);
  if (!key.empty()) {
    fs::create_directories(cached.parent_path());
    write_file_atomic(cached, tag);
  }
  return tag;
}

void stop_daemon() {
  int pid = daemon_pid();
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  for (int i = 0; i < 150 && alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (alive(pid)) ::kill(pid, SIGKILL);
  for (int i = 0; i < 50 && alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

// Takes the flock (LOCK_SH or LOCK_EX), saying so when it has to wait for somebody else.
bool acquire(int fd, int op) {
  if (::flock(fd, op | LOCK_NB) == 0) return true;
  if (errno != EWOULDBLOCK) return false;
  std::fprintf(stderr, "docker peer: waiting for another test process to finish with %s\n", kDir.c_str());
  while (::flock(fd, op) != 0)
    if (errno != EINTR) return false;
  return true;
}

int open_lock() {
  fs::create_directories(kDir);
  return ::open(kLock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

// Under the exclusive lock: a dockerd in its own session, reparented away from this process
// so it outlives it, answering on the socket. Empty, or why not.
std::string start_daemon() {
  stop_daemon();  // one that does not answer (a hung or half-stopped run) holds the socket
  std::ofstream(kDir / "daemon.json")
      << R"({"features":{"buildkit":true},"storage-driver":"overlay2","iptables":false,"ip6tables":false,)"
      << R"("ip-masq":false,"bridge":"none","userland-proxy":false,"log-level":"warn"})";
  // Built before fork(): the child of a threaded process may not allocate.
  const std::string log = (kDir / "dockerd.log").string(), cfg = (kDir / "daemon.json").string(),
                    data = (kDir / "data").string(), exec = (kDir / "exec").string(),
                    pidf = (kDir / "dockerd.pid").string(), host = "unix://" + (kDir / "docker.sock").string();
  std::fflush(nullptr);  // a child must not inherit (and flush again) buffered test output
  pid_t child = ::fork();
  if (child == 0) {
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    // Nothing of the test process: ctest reads a test's output until every holder of the pipe
    // has closed it, so an inherited descriptor would hold the case open as long as dockerd runs.
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(126);
    ::close_range(3, ~0U, 0);
    ::execl("/usr/sbin/dockerd", "dockerd", "--config-file", cfg.c_str(), "--data-root", data.c_str(), "--exec-root",
            exec.c_str(), "--pidfile", pidf.c_str(), "-H", host.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  if (child < 0) return "fork failed";
  ::waitpid(child, nullptr, 0);
  for (int i = 0; i < 150; ++i) {
    if (answers()) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::string text = read_file_if_exists(kDir / "dockerd.log").value_or("");
  stop_daemon();
  return "dockerd did not start: " + text.substr(text.size() > 2000 ? text.size() - 2000 : 0);
}

// Leaves `fd` holding the shared lock on a daemon that answers (empty result), or says why not.
std::string use_daemon(int fd) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!acquire(fd, LOCK_SH)) return "cannot lock " + kLock.string();
    if (answers()) return {};
    ::flock(fd, LOCK_UN);
    if (!acquire(fd, LOCK_EX)) return "cannot lock " + kLock.string();
    std::string why = answers() ? std::string() : start_daemon();
    ::flock(fd, LOCK_UN);
    if (!why.empty()) return why;
  }
  return "dockerd kept stopping right after it started (another test run stopping it?)";
}

std::string missing_prerequisite() {
  if (::geteuid() != 0) return "needs root";
  if (!fs::exists("/usr/sbin/dockerd") || !fs::exists("/usr/bin/docker"))
    return "docker.io is not installed (scripts/install-deps.sh installs it)";
  return {};
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
  if (std::string why = missing_prerequisite(); !why.empty()) return unavailable(why) ? nullptr : nullptr;
  std::unique_ptr<DockerPeer> p(new DockerPeer());
  p->lock_fd_ = open_lock();
  if (p->lock_fd_ < 0) return unavailable("cannot open " + kLock.string()) ? nullptr : nullptr;
  if (std::string why = use_daemon(p->lock_fd_); !why.empty()) return unavailable(why) ? nullptr : nullptr;
  // The shared base image, unless an earlier run loaded the same tree already.
  p->base_ = base_tag();
  if (api_status("/images/" + p->base_ + "/json") != 200) {
    TempDir tmp;
    make_busybox_rootfs(tmp.path() / "rootfs");
    write_docker_archive(tmp.path() / "rootfs", p->base_, tmp.path() / "base.tar");
    CommandResult load = p->docker({"load", "-i", (tmp.path() / "base.tar").string()});
    if (load.exit_code != 0) return unavailable("docker load of the base image failed: " + load.err) ? nullptr : nullptr;
  }
  peer = std::move(p);
  return peer.get();
}

DockerPeer::~DockerPeer() {
  if (lock_fd_ < 0) return;
  // The last user stops a daemon the fixture does not keep: one process holding the lock
  // exclusively is one nobody else uses.
  ::flock(lock_fd_, LOCK_UN);
  if (!fs::exists(kKeep) && ::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0 && !fs::exists(kKeep)) stop_daemon();
  ::close(lock_fd_);
}

std::string start_shared_dockerd() {
  if (std::string why = missing_prerequisite(); !why.empty()) return why;
  int fd = open_lock();
  if (fd < 0) return "cannot open " + kLock.string();
  std::string why = acquire(fd, LOCK_EX) ? std::string() : "cannot lock " + kLock.string();
  if (why.empty()) {
    write_file_atomic(kKeep, "kept running by the ctest fixture until its cleanup\n");
    if (!answers()) why = start_daemon();
    if (!why.empty()) fs::remove(kKeep);
  }
  ::close(fd);
  return why;
}

std::string stop_shared_dockerd() {
  if (::geteuid() != 0) return {};  // nothing a non-root run could have started
  int fd = open_lock();
  if (fd < 0) return "cannot open " + kLock.string();
  if (!acquire(fd, LOCK_EX)) {
    ::close(fd);
    return "cannot lock " + kLock.string();
  }
  fs::remove(kKeep);
  stop_daemon();
  ::close(fd);
  return {};
}

CommandResult DockerPeer::docker(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> argv{"/usr/bin/docker"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, input, {sock_env(), "DOCKER_BUILDKIT=1"});
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
