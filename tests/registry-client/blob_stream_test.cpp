// BlobStream against a real docker-registry: a blob streamed before its digest is known lands
// under that digest with exactly its bytes; every failure (registry down, a PATCH refused, a
// wrong digest) ends the stream quietly and leaves no blob; a registry slower than the writer
// holds it back for max_blocked at most, after which the rest comes from the complete blob;
// and a registry that already has the blob keeps it.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "oci/base/fs.h"
#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/sinks.h"
#include "registry-client/blob_stream.h"
#include "registry-client/transport.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/noise.h"
#include "tests/support/registry_server.h"

using namespace cbuild;
using namespace cbuild::registry;
using cbuild::test::FaultProxy;
using cbuild::test::RegistryServer;

namespace {

TransportOptions plain_opts() {
  TransportOptions o;
  o.certs_dirs = {"/nonexistent"};
  o.backoff = std::chrono::milliseconds(20);
  o.max_attempts = 2;
  return o;
}

oci::Descriptor describe(const std::string& bytes) {
  oci::Descriptor d;
  d.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  d.digest = oci::Digest::of(bytes);
  d.size = static_cast<std::int64_t>(bytes.size());
  return d;
}

// Writes `bytes` in pieces of varying size, as a layer writer does.
void feed(BlobStream& s, const std::string& bytes) {
  std::size_t at = 0, step = 1;
  while (at < bytes.size()) {
    const std::size_t n = std::min(step, bytes.size() - at);
    s.write(std::string_view(bytes).substr(at, n));
    at += n;
    step = step * 3 % 700001 + 1;
  }
}

// Answers the ping and the POST as a registry does, then takes a PATCH's head and never reads
// its body.
class StallingRegistry {
 public:
  StallingRegistry() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~StallingRegistry() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    for (int c : held_) ::close(c);
    ::close(fd_);
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      const timeval wait{.tv_sec = 1, .tv_usec = 0};  // a client that sends nothing does not hold the loop
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
      std::string head;
      char ch;
      while (head.find("\r\n\r\n") == std::string::npos && ::recv(c, &ch, 1, 0) == 1) head += ch;
      if (head.empty() || static_cast<unsigned char>(head[0]) == 0x16) {  // a TLS hello: plain HTTP only
        ::close(c);
        continue;
      }
      std::string reply;
      if (head.rfind("PATCH ", 0) == 0) {
        held_.push_back(c);  // the body is never read
        continue;
      }
      if (head.rfind("POST ", 0) == 0)
        reply = "HTTP/1.1 202 Accepted\r\nLocation: /v2/x/y/blobs/uploads/u1\r\nContent-Length: 0\r\n\r\n";
      else
        reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
      (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> held_;
  std::thread thread_;
};

int head_status(Transport& t, const std::string& repo, const oci::Digest& d) {
  Call head;
  head.method = "HEAD";
  head.path = "/v2/" + repo + "/blobs/" + d.str();
  head.scopes = {"repository:" + repo + ":pull"};
  return t.send(head).status;
}

std::string get_blob(Transport& t, const std::string& repo, const oci::Digest& d) {
  Call get;
  get.path = "/v2/" + repo + "/blobs/" + d.str();
  get.scopes = {"repository:" + repo + ":pull"};
  HttpResponse r = t.send(get);
  REQUIRE(r.status == 200);
  return r.body;
}

}  // namespace

TEST_CASE("blob stream: a blob written in pieces lands under its digest, sent once") {
  RegistryServer srv;
  FaultProxy proxy(srv.port());
  Transport t(proxy.host(), plain_opts());
  const std::string bytes = test::noise(3u << 20);
  const oci::Descriptor d = describe(bytes);
  {
    BlobStream s(t, Reference::parse(proxy.host() + "/team/app:1"));
    feed(s, bytes);
    s.close(d);
    CHECK(s.complete());
    CHECK(s.committed());
    CHECK(s.bytes_sent() == bytes.size());
    CHECK(s.failure().empty());
  }
  CHECK(head_status(t, "team/app", d.digest) == 200);
  CHECK(get_blob(t, "team/app", d.digest) == bytes);
  // POST, one PATCH with the whole body, PUT with no body — the way docker push streams.
  std::size_t patches = 0, patched = 0, put_body = 0;
  for (const auto& seen : proxy.seen()) {
    if (seen.method == "PATCH") ++patches, patched += seen.request_body;
    if (seen.method == "PUT") put_body += seen.request_body;
  }
  CHECK(patches == 1);
  CHECK(patched == bytes.size());
  CHECK(put_body == 0);
}

TEST_CASE("blob stream: an empty blob and a blob written before the session exists both land") {
  RegistryServer srv;
  Transport t(srv.host(), plain_opts());
  for (std::size_t size : {std::size_t{0}, std::size_t{777}}) {
    CAPTURE(size);
    const std::string bytes = test::noise(size);
    BlobStream s(t, Reference::parse(srv.host() + "/x/y:1"));
    s.write(bytes);  // most likely before the POST has been answered
    s.close(describe(bytes));
    CHECK(s.complete());
    CHECK(get_blob(t, "x/y", describe(bytes).digest) == bytes);
  }
}

TEST_CASE("blob stream: failures end the stream quietly and leave no blob") {
  RegistryServer srv;
  const std::string bytes = test::noise(1u << 20);
  const oci::Descriptor d = describe(bytes);
  Transport check(srv.host(), plain_opts());

  SUBCASE("a wrong digest is refused by the registry") {
    Transport t(srv.host(), plain_opts());
    BlobStream s(t, Reference::parse(srv.host() + "/x/y:1"));
    feed(s, bytes);
    oci::Descriptor wrong = d;
    wrong.digest = oci::Digest::of("something else");
    s.close(wrong);
    CHECK_FALSE(s.complete());
    CHECK(s.failure().find("committing the upload") != std::string::npos);
    CHECK(head_status(check, "x/y", wrong.digest) == 404);
    CHECK(head_status(check, "x/y", d.digest) == 404);
  }
  SUBCASE("a registry that refuses the PATCH") {
    FaultProxy proxy(srv.port());
    proxy.add_rule({FaultProxy::Fault::Status500, "PATCH", "/blobs/uploads/", -1});
    Transport t(proxy.host(), plain_opts());
    BlobStream s(t, Reference::parse(proxy.host() + "/x/y:1"));
    feed(s, bytes);
    s.close(d);
    CHECK_FALSE(s.complete());
    CHECK_FALSE(s.failure().empty());
    CHECK(head_status(check, "x/y", d.digest) == 404);
  }
  SUBCASE("a registry that is down") {
    std::string gone;
    {
      FaultProxy proxy(srv.port());
      gone = proxy.host();
    }
    Transport t(gone, plain_opts());
    BlobStream s(t, Reference::parse(gone + "/x/y:1"));
    feed(s, bytes);
    s.close(d);
    CHECK_FALSE(s.complete());
    CHECK_FALSE(s.failure().empty());
  }
  SUBCASE("more bytes waiting than the stream may hold, and nowhere to read them again") {
    Transport t(srv.host(), plain_opts());
    BlobStream s(t, Reference::parse(srv.host() + "/x/y:1"),
                 BlobStream::Options{.max_buffered = 4096, .max_blocked = std::chrono::milliseconds(0)});
    s.write(bytes);  // 1 MiB at once: more than 4 KiB waiting, whatever the registry does
    s.close(d);
    CHECK_FALSE(s.complete());
    CHECK(s.failure().find("fell more than") != std::string::npos);
    CHECK(head_status(check, "x/y", d.digest) == 404);
  }
  SUBCASE("never closed, or abandoned") {
    Transport t(srv.host(), plain_opts());
    {
      BlobStream s(t, Reference::parse(srv.host() + "/x/y:1"));
      feed(s, bytes);
      CHECK_FALSE(s.complete());  // no digest to commit under
    }
    BlobStream s(t, Reference::parse(srv.host() + "/x/y:1"));
    feed(s, bytes);
    s.abandon();
    s.close(d);
    CHECK_FALSE(s.complete());
    CHECK(head_status(check, "x/y", d.digest) == 404);
  }
}

TEST_CASE("blob stream: a registry that falls behind gets the rest from the complete blob") {
  RegistryServer srv;
  FaultProxy proxy(srv.port());
  Transport t(proxy.host(), plain_opts());
  const std::string bytes = test::noise(3u << 20, 5);
  const oci::Descriptor d = describe(bytes);
  int reopened = 0;
  BlobStream::Options o{.max_buffered = 64u << 10,
                        .max_blocked = std::chrono::milliseconds(0),  // drop at once
                        .reopen = [&](const oci::Descriptor& blob) -> std::unique_ptr<oci::ByteSource> {
                          ++reopened;
                          CHECK(blob.digest == d.digest);
                          return std::make_unique<oci::MemorySource>(bytes);
                        }};
  {
    BlobStream s(t, Reference::parse(proxy.host() + "/x/y:1"), o);
    feed(s, bytes);  // pieces up to 700 KB: more than 64 KiB waits, whatever the registry does
    s.close(d);
    CHECK(s.complete());
    CHECK(s.committed());
    CHECK(s.bytes_sent() == bytes.size());
  }
  CHECK(reopened == 1);
  CHECK(get_blob(t, "x/y", d.digest) == bytes);
  std::size_t patches = 0, patched = 0;
  for (const auto& seen : proxy.seen())
    if (seen.method == "PATCH") ++patches, patched += seen.request_body;
  CHECK(patches == 1);
  CHECK(patched == bytes.size());  // nothing sent twice
}

TEST_CASE("blob stream: a registry slower than the writer holds it back, and nothing is dropped") {
  RegistryServer srv;
  Transport t(srv.host(), plain_opts());
  const std::string bytes = test::noise(3u << 20, 6);
  const oci::Descriptor d = describe(bytes);
  int reopened = 0;
  BlobStream::Options o{.max_buffered = 64u << 10,
                        .max_blocked = std::chrono::minutes(5),
                        .reopen = [&](const oci::Descriptor&) -> std::unique_ptr<oci::ByteSource> {
                          ++reopened;
                          return std::make_unique<oci::MemorySource>(bytes);
                        }};
  BlobStream s(t, Reference::parse(srv.host() + "/x/y:1"), o);
  feed(s, bytes);
  s.close(d);
  CHECK(s.complete());
  CHECK_FALSE(s.spilled());
  CHECK(reopened == 0);
  CHECK(get_blob(t, "x/y", d.digest) == bytes);
}

TEST_CASE("blob stream: a registry that takes no body holds the writer back for max_blocked at most") {
  StallingRegistry stalling;
  Transport t(stalling.host(), plain_opts());
  // Far more than socket buffers and curl's own take before the writer must wait.
  const std::string bytes = test::noise(16u << 20, 8);
  BlobStream::Options o{.max_buffered = 64u << 10,
                        .max_blocked = std::chrono::milliseconds(300),
                        .reopen = [&](const oci::Descriptor&) -> std::unique_ptr<oci::ByteSource> {
                          return std::make_unique<oci::MemorySource>(bytes);
                        }};
  BlobStream s(t, Reference::parse(stalling.host() + "/x/y:1"), o);
  const auto t0 = std::chrono::steady_clock::now();
  feed(s, bytes);
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(s.spilled());
  CHECK(waited >= std::chrono::milliseconds(300));
  CHECK(waited < std::chrono::seconds(30));
  s.abandon();  // the PATCH is cut; the stream ends without waiting for the registry
}

TEST_CASE("blob stream: a blob the registry already has is kept, the stream dropped") {
  RegistryServer srv;
  Transport t(srv.host(), plain_opts());
  const std::string bytes = test::noise(2u << 20);
  const oci::Descriptor d = describe(bytes);
  {
    BlobStream first(t, Reference::parse(srv.host() + "/x/y:1"));
    first.write(bytes);
    first.close(d);
    REQUIRE(first.complete());
  }
  // The second stream holds only half the bytes: committing it would fail. The registry's
  // copy is found first, and kept.
  BlobStream again(t, Reference::parse(srv.host() + "/x/y:1"));
  again.write(std::string_view(bytes).substr(0, bytes.size() / 2));
  oci::Descriptor same = d;
  again.close(same);
  CHECK(again.complete());
  CHECK_FALSE(again.committed());
  CHECK(get_blob(t, "x/y", d.digest) == bytes);
}
