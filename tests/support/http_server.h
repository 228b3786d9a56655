// HttpServer — a tiny HTTP/1.1 file server on 127.0.0.1 (a free port) for ADD-of-a-URL tests.
//
// Routes map a path ("/files/a.txt", query included when the request has one) to a list of
// replies served in turn, the last one repeating: {500, 200} fails once, then succeeds. Unknown
// paths get 404. Each connection carries one request and is closed after the reply. Requests
// are recorded (method and path). stop() closes the listener (the port then refuses
// connections); the destructor stops and joins the thread. Thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cbuild::test {

class HttpServer {
 public:
  struct Reply {
    int status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Last-Modified", "…"}
  };

  HttpServer();
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT" + path
  std::string url(const std::string& path) const;
  void route(const std::string& path, std::vector<Reply> replies);
  void route(const std::string& path, Reply reply) { route(path, std::vector<Reply>{std::move(reply)}); }
  // Requests received for `path` so far.
  int hits(const std::string& path) const;
  void stop();

 private:
  void loop();
  void handle(int fd);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Reply>> routes_;
  std::map<std::string, int> hits_;
  std::thread thread_;
};

}  // namespace cbuild::test
