// Transport's scheme memo: an insecure host that answered over plain HTTP is tried over HTTP
// first by the process's later transports (one refused TLS handshake per host, not one per
// transport), a host that answers plain HTTP with 400 (it speaks TLS now) is reached over
// HTTPS after all, and threads that ping at once share one ping.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "registry-client/curl_http.h"
#include "registry-client/http.h"
#include "registry-client/transport.h"
#include "tests/support/registry_server.h"

using namespace cbuild;
using namespace cbuild::registry;

namespace {

// Passes requests on (to `next`, or answers them itself) and records their URLs.
class Recording : public HttpClient {
 public:
  explicit Recording(std::shared_ptr<HttpClient> next) : next_(std::move(next)) {}
  HttpResponse send(const HttpRequest& req) override {
    {
      std::lock_guard lk(mu_);
      urls_.push_back(req.url);
    }
    return next_->send(req);
  }
  std::vector<std::string> urls() {
    std::lock_guard lk(mu_);
    return urls_;
  }

 private:
  std::shared_ptr<HttpClient> next_;
  std::mutex mu_;
  std::vector<std::string> urls_;
};

// A loopback host that refuses TLS at first, then (after switch_to_tls) answers plain HTTP
// with 400 and HTTPS with 200.
class Switching : public HttpClient {
 public:
  std::atomic<bool> tls{false};
  HttpResponse send(const HttpRequest& req) override {
    bool https = req.url.rfind("https://", 0) == 0;
    HttpResponse r;
    if (https && !tls) throw ConnectionError(ErrorKind::Unavailable, "TLS handshake refused", true, false);
    r.status = https || !tls ? 200 : 400;
    return r;
  }
};

}  // namespace

TEST_CASE("transport: a loopback host that answered plain HTTP is tried over HTTP first next time") {
  test::RegistryServer srv;
  auto rec = std::make_shared<Recording>(std::make_shared<CurlHttp>());
  TransportOptions o;
  o.certs_dirs = {"/nonexistent"};
  o.http = rec;
  Transport first(srv.host(), o);
  CHECK(first.base_url() == "http://" + srv.host());
  REQUIRE(rec->urls().size() == 2);
  CHECK(rec->urls()[0] == "https://" + srv.host() + "/v2/");

  // Several threads of a new transport at once: one ping, over HTTP straight away.
  Transport second(srv.host(), o);
  std::vector<std::thread> threads;
  std::vector<std::string> seen(4);
  for (std::size_t i = 0; i < seen.size(); ++i) threads.emplace_back([&, i] { seen[i] = second.base_url(); });
  for (auto& t : threads) t.join();
  for (const auto& s : seen) CHECK(s == "http://" + srv.host());
  std::vector<std::string> urls = rec->urls();
  REQUIRE(urls.size() == 3);
  CHECK(urls[2] == "http://" + srv.host() + "/v2/");
}

TEST_CASE("transport: a remembered plain host that speaks TLS now is reached over HTTPS") {
  auto sw = std::make_shared<Switching>();
  auto rec = std::make_shared<Recording>(sw);
  TransportOptions o;
  o.certs_dirs = {"/nonexistent"};
  o.http = rec;
  const std::string host = "127.0.0.1:1";  // never dialled: the fake answers
  Transport before(host, o);
  CHECK(before.base_url() == "http://" + host);
  sw->tls = true;
  Transport after(host, o);
  CHECK(after.base_url() == "https://" + host);
  std::vector<std::string> urls = rec->urls();
  REQUIRE(urls.size() == 4);
  CHECK(urls[2] == "http://" + host + "/v2/");   // the memo's try, answered 400
  CHECK(urls[3] == "https://" + host + "/v2/");
}
