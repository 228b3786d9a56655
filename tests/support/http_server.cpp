#include "tests/support/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include "tests/support/loopback.h"

namespace cbuild::test {

namespace {

void send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

}  // namespace

HttpServer::HttpServer() {
  listen_fd_ = listen_on_loopback(port_, "http server");
  thread_ = std::thread([this] { loop(); });
}

HttpServer::~HttpServer() { stop(); }

std::string HttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void HttpServer::route(const std::string& path, std::vector<Reply> replies) {
  std::lock_guard lk(mu_);
  routes_[path] = std::move(replies);
}

int HttpServer::hits(const std::string& path) const {
  std::lock_guard lk(mu_);
  auto it = hits_.find(path);
  return it == hits_.end() ? 0 : it->second;
}

void HttpServer::stop() {
  if (stop_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void HttpServer::loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    handle(fd);  // one at a time: test traffic is tiny
    ::close(fd);
  }
}

void HttpServer::handle(int fd) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    head.append(buf, static_cast<std::size_t>(n));
    if (head.size() > (1u << 16)) return;
  }
  auto sp1 = head.find(' ');
  auto sp2 = head.find(' ', sp1 + 1);
  std::string method = head.substr(0, sp1);
  std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
  Reply r{.status = 404, .body = "not found\n", .headers = {}};
  {
    std::lock_guard lk(mu_);
    int n = hits_[path]++;
    auto it = routes_.find(path);
    if (it != routes_.end() && !it->second.empty())
      r = it->second[std::min<std::size_t>(static_cast<std::size_t>(n), it->second.size() - 1)];
  }
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
  for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n";
  if (method != "HEAD") out += r.body;
  send_all(fd, out);
}

}  // namespace cbuild::test
