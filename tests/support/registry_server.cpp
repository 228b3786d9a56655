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

#include <atomic>
#include <ctime>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>

#include "registry-client/credentials.h"
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


// ---- token issuer -------------------------------------------------------------------------

namespace {

std::string b64url(std::string_view in) {
  std::string s = registry::base64_encode(in);
  for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> form_params(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto kv = q.substr(0, amp);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) out.emplace_back(url_decode(kv.substr(0, eq)), url_decode(kv.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace

struct RegistryServer::Issuer {
  RegistryServer& srv;
  int fd = -1;
  int port = 0;
  std::atomic<bool> stop{false};
  std::atomic<int> requests{0};
  EVP_PKEY* key = nullptr;
  std::string cert_der_b64;
  std::thread thread;

  explicit Issuer(RegistryServer& s, const fs::path& dir) : srv(s) {
    fs::create_directories(dir);
    must({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cbuild token issuer",
          "-keyout", (dir / "token.key").string(), "-out", (dir / "token.crt").string()});
    must({"openssl", "x509", "-in", (dir / "token.crt").string(), "-outform", "DER", "-out", (dir / "token.der").string()});
    std::ifstream der(dir / "token.der", std::ios::binary);
    std::string d((std::istreambuf_iterator<char>(der)), std::istreambuf_iterator<char>());
    cert_der_b64 = registry::base64_encode(d);
    FILE* kf = std::fopen((dir / "token.key").c_str(), "r");
    if (!kf) throw std::runtime_error("token issuer: no key");
    key = PEM_read_PrivateKey(kf, nullptr, nullptr, nullptr);
    std::fclose(kf);
    if (!key) throw std::runtime_error("token issuer: cannot read key");
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 32) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("token issuer: cannot listen");
    port = ntohs(a.sin_port);
    thread = std::thread([this] { loop(); });
  }
  ~Issuer() {
    stop = true;
    ::shutdown(fd, SHUT_RDWR);
    thread.join();
    ::close(fd);
    EVP_PKEY_free(key);
  }

  std::string sign(const std::string& input) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::size_t n = 0;
    std::string sig;
    if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
        EVP_DigestSign(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1) {
      sig.resize(n);
      EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size());
      sig.resize(n);
    }
    EVP_MD_CTX_free(ctx);
    return sig;
  }

  std::string token(const std::string& subject, const std::vector<std::string>& scopes, bool may_push) {
    nlohmann::json access = nlohmann::json::array();
    for (const auto& sc : scopes) {
      // repository:NAME:ACTIONS (NAME may contain ':' only for a port, which it never does here)
      auto first = sc.find(':'), last = sc.rfind(':');
      if (first == std::string::npos || first == last) continue;
      nlohmann::json actions = nlohmann::json::array();
      std::string acts = sc.substr(last + 1);
      for (std::size_t p = 0; p <= acts.size();) {
        auto c = acts.find(',', p);
        std::string a = acts.substr(p, c == std::string::npos ? std::string::npos : c - p);
        if (a == "pull" || (a == "push" && may_push)) actions.push_back(a);
        if (c == std::string::npos) break;
        p = c + 1;
      }
      access.push_back({{"type", sc.substr(0, first)}, {"name", sc.substr(first + 1, last - first - 1)}, {"actions", actions}});
    }
    auto now = static_cast<long>(std::time(nullptr));
    nlohmann::json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", {cert_der_b64}}};
    nlohmann::json claims = {{"iss", "cbuild-test-issuer"}, {"sub", subject}, {"aud", "cbuild-test-registry"},
                             {"exp", now + 300}, {"nbf", now - 10}, {"iat", now},
                             {"jti", std::to_string(now) + "-" + std::to_string(requests.load())}, {"access", access}};
    std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
    return input + "." + b64url(sign(input));
  }

  void reply(int c, int status, const std::string& body) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Unauthorized") +
                    "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
    [[maybe_unused]] auto n = ::send(c, r.data(), r.size(), MSG_NOSIGNAL);
  }

  void serve(int c) {
    std::string buf;
    char tmp[8192];
    std::size_t head_end = std::string::npos;
    while (head_end == std::string::npos) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return;
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return;
      buf.append(tmp, static_cast<std::size_t>(n));
      head_end = buf.find("\r\n\r\n");
    }
    ++requests;
    std::string head = buf.substr(0, head_end);
    std::string lower_head = head;
    for (auto& ch : lower_head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto hv = [&](const std::string& name) -> std::string {
      auto p = lower_head.find("\r\n" + name + ":");
      if (p == std::string::npos) return {};
      auto s = head.find_first_not_of(' ', p + 3 + name.size());
      return head.substr(s, head.find("\r\n", s) - s);
    };
    std::string body = buf.substr(head_end + 4);
    std::size_t clen = hv("content-length").empty() ? 0 : std::stoull(hv("content-length"));
    while (body.size() < clen) {
      ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) return;
      body.append(tmp, static_cast<std::size_t>(n));
    }
    std::string method = head.substr(0, head.find(' '));
    auto sp = head.find(' ');
    std::string target = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);
    auto q = target.find('?');
    std::vector<std::string> scopes;
    std::string subject;
    bool may_push = false;
    if (method == "POST") {
      std::string grant, refresh;
      for (auto& [k, v] : form_params(body)) {
        if (k == "grant_type") grant = v;
        if (k == "refresh_token") refresh = v;
        if (k == "scope")
          for (std::size_t p = 0; p <= v.size();) {
            auto e = v.find(' ', p);
            scopes.push_back(v.substr(p, e == std::string::npos ? std::string::npos : e - p));
            if (e == std::string::npos) break;
            p = e + 1;
          }
      }
      if (grant != "refresh_token" || refresh != srv.refresh_token_) return reply(c, 401, "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"bad refresh token\"}]}");
      subject = srv.user_;
      may_push = true;
      return reply(c, 200, nlohmann::json{{"access_token", token(subject, scopes, may_push)}, {"expires_in", 300}}.dump());
    }
    if (q != std::string::npos)
      for (auto& [k, v] : form_params(std::string_view(target).substr(q + 1)))
        if (k == "scope") scopes.push_back(v);
    if (auto auth = hv("authorization"); !auth.empty()) {
      auto dec = registry::base64_decode(auth.substr(auth.find(' ') + 1));
      if (!dec || *dec != srv.user_ + ":" + srv.password_)
        return reply(c, 401, "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"wrong user name or password\"}]}");
      subject = srv.user_;
      may_push = true;
    }
    reply(c, 200, nlohmann::json{{"token", token(subject, scopes, may_push)}, {"expires_in", 300}}.dump());
  }

  void loop() {
    while (!stop) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      serve(c);
      ::close(c);
    }
  }
};

void RegistryServer::stop_token_issuer() { issuer_.reset(); }

int RegistryServer::token_requests() const { return issuer_ ? issuer_->requests.load() : 0; }

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
  if (mode_ == Mode::Token) {
    issuer_ = std::make_unique<Issuer>(*this, dir_.path() / "token");
    cfg += "auth:\n  token:\n    realm: http://127.0.0.1:" + std::to_string(issuer_->port) +
           "/token\n    service: cbuild-test-registry\n    issuer: cbuild-test-issuer\n    rootcertbundle: " +
           (dir_.path() / "token/token.crt").string() + "\n";
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
