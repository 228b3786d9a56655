#include "tests/support/registry_server.h"

#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/run_command.h"

namespace cbuild::test {

namespace fs = std::filesystem;

int free_loopback_port() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw std::runtime_error("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    throw std::runtime_error("bind 127.0.0.1:0");
  }
  int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

bool loopback_port_open(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

namespace {

void must(const std::vector<std::string>& argv, const std::string& input = {}) {
  auto r = run_command(argv, input);
  if (r.exit_code != 0) throw std::runtime_error("registry fixture: " + argv[0] + " failed: " + r.err);
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
  if (!f) throw std::runtime_error("registry fixture: cannot write " + p.string());
}

// A CA and a server certificate for 127.0.0.1/localhost signed by it.
void make_tls(const fs::path& d) {
  fs::create_directories(d);
  auto p = [&](const char* n) { return (d / n).string(); };
  must({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cbuild test CA",
        "-keyout", p("ca.key"), "-out", p("ca.crt")});
  must({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", p("server.key"),
        "-out", p("server.csr")});
  write_text(d / "ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  must({"openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", p("ext.cnf"), "-out", p("server.crt")});
}

}  // namespace

RegistryServer::RegistryServer(Mode mode) : mode_(mode), dir_({}, "cbuild-registry-") {
  fs::create_directories(storage_dir());
  port_ = free_loopback_port();
  std::string cfg =
      "version: 0.1\n"
      "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: " + storage_dir().string() + "\n"
      "  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:" + std::to_string(port_) + "\n";
  if (mode_ == Mode::TlsHtpasswd) {
    make_tls(dir_.path() / "tls");
    cfg += "  tls:\n    certificate: " + (dir_.path() / "tls/server.crt").string() +
           "\n    key: " + (dir_.path() / "tls/server.key").string() + "\n";
    auto r = run_command({"htpasswd", "-Bbn", user_, password_});
    if (r.exit_code != 0) throw std::runtime_error("registry fixture: htpasswd failed: " + r.err);
    write_text(dir_.path() / "htpasswd", r.out);
    cfg += "auth:\n  htpasswd:\n    realm: cbuild-test\n    path: " + (dir_.path() / "htpasswd").string() + "\n";
    fs::create_directories(certs_dir() / host());
    fs::copy_file(ca_cert(), certs_dir() / host() / "ca.crt");
  }
  write_text(dir_.path() / "config.yml", cfg);
  start();
}

RegistryServer::~RegistryServer() { stop(); }

std::string RegistryServer::host() const { return "127.0.0.1:" + std::to_string(port_); }

std::string RegistryServer::log() const {
  std::ifstream f(dir_.path() / "registry.log");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s;
}

void RegistryServer::start() {
  if (pid_ > 0) return;
  auto cfg = (dir_.path() / "config.yml").string();
  auto logp = (dir_.path() / "registry.log").string();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("registry fixture: fork failed");
  if (pid == 0) {
    int fd = ::open(logp.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    int nul = ::open("/dev/null", O_RDONLY);
    if (nul >= 0) ::dup2(nul, 0);
    ::setpgid(0, 0);
    ::execl("/usr/bin/docker-registry", "docker-registry", "serve", cfg.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!loopback_port_open(port_)) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("registry fixture: docker-registry exited: " + log());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      stop();
      throw std::runtime_error("registry fixture: docker-registry did not listen: " + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void RegistryServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // The registry may linger in TIME_WAIT-free close; wait until the port stops accepting.
  for (int i = 0; i < 100 && loopback_port_open(port_); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace cbuild::test
