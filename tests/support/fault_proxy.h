// FaultProxy — a loopback HTTP/1.1 proxy in front of a plain-HTTP registry that injects
// faults into matching requests, for retry/resume/verification tests.
//
// One request per connection (it forces "Connection: close" upstream and downstream); a TLS
// ClientHello is answered by closing the connection (so clients fall back to plain HTTP as they
// would with the registry itself). Replies are buffered whole: for small test blobs only.
// Faults apply to the first `times` requests whose method matches (empty: any) and whose path
// contains `path_contains`:
//   CutBody     forward the reply but close after half of its body
//   Status500   answer 500 without forwarding
//   Status429   answer 429 with Retry-After: 1 without forwarding
//   Corrupt     forward the reply with one body byte flipped
// Requests and whether they carried a Range header are recorded, with the body bytes each way
// (a chunked request body — a streamed upload — counts its decoded bytes) and the status (for tests that assert how many bytes moved, e.g. no layer blob fetched).
// The destructor stops the thread and closes the listener (the registry behind it then looks
// down to its clients). Thread-safe.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cbuild::test {

class FaultProxy {
 public:
  enum class Fault { None, CutBody, Status500, Status429, Corrupt };
  struct Rule {
    Fault fault = Fault::None;
    std::string method;
    std::string path_contains;
    int times = 1;  // -1: always
  };
  struct Seen {
    std::string method;
    std::string path;
    std::string range;  // value of the Range header, if any
    std::size_t request_body = 0;   // bytes of the request body
    std::size_t response_body = 0;  // bytes of the reply body as forwarded to the client
    int status = 0;                 // of the reply forwarded; 0 when none was
  };

  explicit FaultProxy(int upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  void add_rule(Rule r);
  std::vector<Seen> seen() const;
  void clear_seen();
  int faults_injected() const { return injected_.load(); }

 private:
  void loop();
  void handle(int fd);

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> injected_{0};
  mutable std::mutex mu_;
  std::vector<Rule> rules_;
  std::vector<Seen> seen_;
  std::thread thread_;
};

}  // namespace cbuild::test
