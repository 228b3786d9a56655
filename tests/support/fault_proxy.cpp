#include "tests/support/fault_proxy.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/loopback.h"

namespace cbuild::test {

namespace {

bool send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads until the end of the head; returns false on EOF/timeout. `rest` gets bytes past it.
bool read_head(int fd, std::string& head, std::string& rest) {
  std::string buf;
  char tmp[65536];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return false;
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    if (buf.empty() && static_cast<unsigned char>(tmp[0]) == 0x16) return false;  // TLS ClientHello
    buf.append(tmp, static_cast<std::size_t>(n));
    auto e = buf.find("\r\n\r\n");
    if (e != std::string::npos) {
      head = buf.substr(0, e + 4);
      rest = buf.substr(e + 4);
      return true;
    }
    if (buf.size() > (1u << 20)) return false;
  }
}

std::string header_value(const std::string& head, const std::string& name) {
  std::string l = lower(head);
  auto p = l.find("\r\n" + name + ":");
  if (p == std::string::npos) return {};
  auto s = p + 3 + name.size();
  auto e = head.find("\r\n", s);
  std::string v = head.substr(s, e - s);
  v.erase(0, v.find_first_not_of(' '));
  return v;
}

// The head with any Connection header replaced by "Connection: close".
std::string force_close(const std::string& head) {
  std::string out;
  std::size_t pos = 0;
  while (pos < head.size()) {
    auto e = head.find("\r\n", pos);
    std::string line = head.substr(pos, e - pos);
    pos = e + 2;
    if (line.empty()) break;
    if (lower(line).rfind("connection:", 0) == 0) continue;
    out += line + "\r\n";
  }
  return out + "Connection: close\r\n\r\n";
}

}  // namespace

FaultProxy::FaultProxy(int upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = listen_on_loopback(port_, "fault proxy");
  thread_ = std::thread([this] { loop(); });
}

FaultProxy::~FaultProxy() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  thread_.join();
  ::close(listen_fd_);
}

void FaultProxy::add_rule(Rule r) {
  std::lock_guard lk(mu_);
  rules_.push_back(std::move(r));
}

std::vector<FaultProxy::Seen> FaultProxy::seen() const {
  std::lock_guard lk(mu_);
  return seen_;
}

void FaultProxy::clear_seen() {
  std::lock_guard lk(mu_);
  seen_.clear();
}

void FaultProxy::loop() {
  std::vector<std::thread> workers;
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    workers.emplace_back([this, fd] {
      handle(fd);
      ::close(fd);
    });
  }
  for (auto& w : workers) w.join();
}

void FaultProxy::handle(int fd) {
  std::string head, body;
  if (!read_head(fd, head, body)) return;
  std::string method = head.substr(0, head.find(' '));
  auto sp = head.find(' ');
  std::string path = head.substr(sp + 1, head.find(' ', sp + 1) - sp - 1);
  std::size_t clen = 0;
  if (auto v = header_value(head, "content-length"); !v.empty()) clen = std::stoull(v);
  char tmp[65536];
  auto more = [&] {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n > 0) body.append(tmp, static_cast<std::size_t>(n));
    return n > 0;
  };
  // A chunked body (a streamed upload) is forwarded as it came; its decoded length is what
  // counts as the request's body bytes.
  std::size_t decoded = 0;
  const bool chunked = header_value(head, "transfer-encoding").find("chunked") != std::string::npos;
  if (chunked) {
    std::size_t at = 0;
    for (;;) {
      std::size_t eol;
      while ((eol = body.find("\r\n", at)) == std::string::npos)
        if (!more()) return;
      const std::size_t size = std::stoull(body.substr(at, eol - at), nullptr, 16);
      while (body.size() < eol + 2 + size + 2)
        if (!more()) return;
      at = eol + 2 + size + 2;
      decoded += size;
      if (size == 0) break;  // no trailers
    }
  }
  while (!chunked && body.size() < clen)
    if (!more()) return;
  Fault fault = Fault::None;
  std::size_t at = 0;
  // Records what reached the client (a cleared list since: nothing).
  auto replied = [&](int status, std::size_t bytes) {
    std::lock_guard lk(mu_);
    if (at < seen_.size() && seen_[at].method == method && seen_[at].path == path) {
      seen_[at].status = status;
      seen_[at].response_body = bytes;
    }
  };
  {
    std::lock_guard lk(mu_);
    at = seen_.size();
    seen_.push_back({method, path, header_value(head, "range"), chunked ? decoded : body.size()});
    for (auto& r : rules_) {
      if (r.times == 0 || (!r.method.empty() && r.method != method) || path.find(r.path_contains) == std::string::npos)
        continue;
      if (r.times > 0) --r.times;
      fault = r.fault;
      break;
    }
  }
  if (fault == Fault::Status500 || fault == Fault::Status429) {
    ++injected_;
    std::string b = "{\"errors\":[{\"code\":\"" + std::string(fault == Fault::Status500 ? "UNKNOWN" : "TOOMANYREQUESTS") +
                    "\",\"message\":\"injected\"}]}";
    send_all(fd, std::string(fault == Fault::Status500 ? "HTTP/1.1 500 Internal Server Error\r\n"
                                                       : "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n") +
                     "Content-Type: application/json\r\nContent-Length: " + std::to_string(b.size()) +
                     "\r\nConnection: close\r\n\r\n" + b);
    return;
  }
  int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (up >= 0) ::close(up);
    return;  // upstream down: the client sees the connection closed without a reply
  }
  send_all(up, force_close(head) + body);
  std::string reply;
  while (true) {
    ssize_t n = ::recv(up, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    reply.append(tmp, static_cast<std::size_t>(n));
  }
  ::close(up);
  auto e = reply.find("\r\n\r\n");
  if (e == std::string::npos) return;
  std::string rhead = reply.substr(0, e + 4), rbody = reply.substr(e + 4);
  int status = 0;
  if (auto sp1 = rhead.find(' '); sp1 != std::string::npos) status = std::atoi(rhead.c_str() + sp1 + 1);
  if (fault == Fault::CutBody && method != "HEAD" && rbody.size() > 1) {
    ++injected_;
    replied(status, rbody.size() / 2);
    send_all(fd, force_close(rhead) + rbody.substr(0, rbody.size() / 2));
    return;
  }
  if (fault == Fault::Corrupt && !rbody.empty() && method != "HEAD") {
    ++injected_;
    rbody[rbody.size() / 2] = static_cast<char>(rbody[rbody.size() / 2] ^ 0x55);
  }
  replied(status, method == "HEAD" ? 0 : rbody.size());
  send_all(fd, force_close(rhead) + rbody);
}

}  // namespace cbuild::test
