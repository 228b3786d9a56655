#include "registry-client/origin_fetcher.h"

#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "oci/base/error.h"
#include "registry-client/blob_origins.h"
#include "registry-client/connect.h"
#include "registry-client/http.h"
#include "registry-client/manifest_fetch.h"
#include "registry-client/puller.h"
#include "registry-client/reference.h"
#include "registry-client/registry_error.h"
#include "registry-client/transport.h"

namespace cbuild::registry {

namespace {

struct OriginFetcher {
  oci::LayoutStore& store;
  bool tls_verify;
  std::function<void(const std::string&)> log;
  BlobOrigins origins;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<Transport>> transports;

  OriginFetcher(oci::LayoutStore& s, bool tls, std::function<void(const std::string&)> l)
      : store(s), tls_verify(tls), log(std::move(l)), origins(s.root()) {}

  Transport& transport(const Reference& ref) {
    std::lock_guard lk(mu);
    auto& t = transports[ref.registry()];
    if (!t) t = connect(ref, tls_verify);
    return *t;
  }

  // The blob's size as the registry states it; the digest check on commit makes it honest.
  std::int64_t head_size(Transport& t, const Reference& ref, const oci::Digest& digest) {
    Call head;
    head.method = "HEAD";
    head.path = "/v2/" + ref.repository() + "/blobs/" + digest.str();
    head.scopes = {repo_scope(ref.repository(), "pull")};
    head.what = "fetch blob " + digest.str() + " from " + quote(ref.registry() + "/" + ref.repository());
    HttpResponse r = t.send(head);
    if (r.status == 404) throw Error(ErrorKind::NotFound, "the registry no longer has it");
    expect_status(r, {200}, head.what, t.host());
    try {
      std::size_t used = 0;
      std::string len = r.header("content-length");
      std::int64_t n = std::stoll(len, &used);
      if (used == len.size() && n >= 0) return n;
    } catch (const std::exception&) {
    }
    throw Error(ErrorKind::DataLoss, "the registry gave no valid Content-Length for it");
  }

  bool fetch(const oci::Digest& digest) {
    std::vector<std::string> where = origins.locations(digest);
    if (where.empty()) return false;
    std::string failures;
    ErrorKind last = ErrorKind::NotFound;
    std::set<std::string> unreachable;  // one failed connection is enough per registry
    for (const std::string& origin : where) {
      std::string host = origin.substr(0, origin.find('/'));
      if (unreachable.count(host)) continue;
      try {
        Reference ref = Reference::parse(origin + "@" + digest.str());
        Transport& t = transport(ref);
        oci::Descriptor desc{.media_type = "application/octet-stream", .digest = digest, .size = head_size(t, ref, digest)};
        Puller(t, store, PullOptions{.tag = false}).fetch_blob(ref, desc);
        if (log) log("fetched " + digest.str() + " from " + origin);
        return true;
      } catch (const ConnectionError& e) {
        unreachable.insert(host);
        last = e.kind();
        failures += (failures.empty() ? "" : "; ") + origin + ": " + e.what();
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::Cancelled) throw;
        last = e.kind();
        failures += (failures.empty() ? "" : "; ") + origin + ": " + e.what();
      }
    }
    throw Error(last, "blob " + digest.str() + " is not in the local store (the image was pulled or cached without it) "
                      "and fetching it failed: " + failures);
  }
};

}  // namespace

oci::LayoutStore::BlobFetcher origin_fetcher(oci::LayoutStore& store, bool tls_verify,
                                             std::function<void(const std::string&)> log) {
  auto f = std::make_shared<OriginFetcher>(store, tls_verify, std::move(log));
  return [f](const oci::Digest& digest) { return f->fetch(digest); };
}

}  // namespace cbuild::registry
