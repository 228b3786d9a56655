#include "registry-client/pusher.h"

#include <mutex>
#include <vector>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "registry-client/manifest_fetch.h"
#include "oci/base/parallel.h"
#include "registry-client/registry_error.h"

namespace cbuild::registry {

namespace mt = oci::media_types;

namespace {

// Yields the next `n` bytes of a shared source (a chunk of a blob being uploaded).
class WindowSource : public oci::ByteSource {
 public:
  WindowSource(oci::ByteSource& src, std::int64_t n, const std::atomic<bool>& stop) : src_(src), left_(n), stop_(stop) {}
  std::size_t read(std::span<std::byte> out) override {
    if (stop_.load()) throw Error(ErrorKind::Cancelled, "upload stopped because another blob failed");
    if (left_ <= 0) return 0;
    auto want = std::min<std::int64_t>(left_, static_cast<std::int64_t>(out.size()));
    std::size_t got = src_.read(out.first(static_cast<std::size_t>(want)));
    if (got == 0) throw Error(ErrorKind::DataLoss, "blob ended before its descriptor's size");
    left_ -= static_cast<std::int64_t>(got);
    return got;
  }

 private:
  oci::ByteSource& src_;
  std::int64_t left_;
  const std::atomic<bool>& stop_;
};

// "0-1234" → 1235 (bytes the registry holds); "" → 0.
std::int64_t range_end(const std::string& range) {
  auto dash = range.find('-');
  if (dash == std::string::npos) return 0;
  try {
    return std::stoll(range.substr(dash + 1)) + 1;
  } catch (...) {
    return 0;
  }
}

}  // namespace

Pusher::Pusher(Transport& transport, const oci::BlobProvider& store, PushOptions opts)
    : t_(transport), store_(store), opts_(std::move(opts)) {}

std::string Pusher::start_upload(const Reference& dest, const oci::Descriptor& desc, std::int64_t* min_chunk,
                                 bool* mounted) {
  const std::string what = "push blob " + desc.digest.str() + " to " + quote(dest.str());
  *mounted = false;
  std::vector<std::string> from;
  if (opts_.origins)
    for (auto& r : opts_.origins->repositories(desc.digest, dest.registry()))
      if (r != dest.repository()) from.push_back(r);
  Call c;
  c.method = "POST";
  c.path = "/v2/" + dest.repository() + "/blobs/uploads/";
  c.scopes = {repo_scope(dest.repository(), "pull,push")};
  c.headers.emplace_back("Content-Length", "0");
  c.what = what;
  if (!from.empty()) {
    c.path += "?mount=" + desc.digest.str() + "&from=" + from.front();
    c.scopes.push_back(repo_scope(from.front(), "pull"));
  }
  HttpResponse r = t_.send(c);
  if (r.status == 201 && !from.empty()) {
    *mounted = true;
    return {};
  }
  expect_status(r, {202}, what, t_.host());
  std::string loc = r.header("location");
  if (loc.empty()) throw RegistryError(ErrorKind::Unavailable, what + ": " + t_.host() + " gave no upload Location", 202, {}, false);
  if (auto m = r.header("oci-chunk-min-length"); !m.empty()) {
    try {
      *min_chunk = std::stoll(m);
    } catch (...) {
    }
  }
  return resolve_url(t_.base_url() + c.path, loc);
}

void Pusher::upload_monolithic(const Reference& dest, const oci::Descriptor& desc, const std::string& location) {
  Call c;
  c.method = "PUT";
  c.path = with_query(location, "digest=" + desc.digest.str());
  c.scopes = {repo_scope(dest.repository(), "pull,push")};
  c.headers.emplace_back("Content-Type", "application/octet-stream");
  c.open_body = [this, d = desc.digest] { return store_.open(d); };
  c.body_size = desc.size;
  c.what = "push blob " + desc.digest.str() + " to " + quote(dest.str());
  HttpResponse r = t_.send(c);
  expect_status(r, {201}, c.what, t_.host());
}

void Pusher::upload_chunked(const Reference& dest, const oci::Descriptor& desc, std::string location,
                            std::int64_t min_chunk) {
  const std::string what = "push blob " + desc.digest.str() + " to " + quote(dest.str());
  const std::int64_t chunk = std::max(opts_.chunk_size, min_chunk);
  auto src = store_.open(desc.digest);
  std::int64_t offset = 0;
  int failures = 0;
  while (offset < desc.size) {
    check_cancelled();
    const std::int64_t n = std::min(chunk, desc.size - offset);
    bool first_attempt = true;
    Call c;
    c.method = "PATCH";
    c.path = location;
    c.scopes = {repo_scope(dest.repository(), "pull,push")};
    c.headers.emplace_back("Content-Type", "application/octet-stream");
    c.headers.emplace_back("Content-Range", std::to_string(offset) + "-" + std::to_string(offset + n - 1));
    // Transport resends a failed request from a fresh body; only the first try can use the
    // shared source, a retry re-reads the blob up to the offset.
    std::unique_ptr<oci::ByteSource> reopened;
    c.open_body = [&]() -> std::unique_ptr<oci::ByteSource> {
      if (first_attempt) {
        first_attempt = false;
        return std::make_unique<WindowSource>(*src, n, stop_);
      }
      src = store_.open(desc.digest);
      oci::skip_bytes(*src, offset);
      return std::make_unique<WindowSource>(*src, n, stop_);
    };
    c.body_size = n;
    c.what = what;
    HttpResponse r;
    bool ok = false;
    try {
      r = t_.send(c);
      ok = r.status == 202;
    } catch (const ConnectionError&) {
      if (++failures > opts_.max_chunk_retries) throw;
    }
    if (ok) {
      offset += n;
      if (auto loc = r.header("location"); !loc.empty()) location = resolve_url(location, loc);
      continue;
    }
    if (r.status != 0 && r.status != 416 && !is_temporary_status(r.status)) expect_status(r, {202}, what, t_.host());
    if (r.status != 0 && ++failures > opts_.max_chunk_retries) expect_status(r, {202}, what, t_.host());
    // Ask the registry how much it has and continue from there.
    Call st;
    st.path = location;
    st.scopes = c.scopes;
    st.what = what;
    HttpResponse s = t_.send(st);
    expect_status(s, {204}, what + " (upload status)", t_.host());
    if (auto loc = s.header("location"); !loc.empty()) location = resolve_url(location, loc);
    offset = range_end(s.header("range"));
    if (opts_.log) opts_.log("resuming upload of " + desc.digest.str() + " at byte " + std::to_string(offset));
    src = store_.open(desc.digest);
    oci::skip_bytes(*src, offset);
  }
  // Reading to the end makes the store verify the blob before the upload is committed.
  std::byte b;
  if (src->read(std::span<std::byte>(&b, 1)) != 0)
    throw Error(ErrorKind::DataLoss, what + ": the stored blob is longer than its descriptor's size");
  Call fin;
  fin.method = "PUT";
  fin.path = with_query(location, "digest=" + desc.digest.str());
  fin.scopes = {repo_scope(dest.repository(), "pull,push")};
  fin.headers.emplace_back("Content-Length", "0");
  fin.what = what;
  HttpResponse r = t_.send(fin);
  expect_status(r, {201}, what, t_.host());
}

Pusher::BlobOutcome Pusher::push_blob(const Reference& dest, const oci::Descriptor& desc) {
  const std::string what = "push blob " + desc.digest.str() + " to " + quote(dest.str());
  Call head;
  head.method = "HEAD";
  head.path = "/v2/" + dest.repository() + "/blobs/" + desc.digest.str();
  head.scopes = {repo_scope(dest.repository(), "pull,push")};
  head.what = what;
  HttpResponse h = t_.send(head);
  if (h.status == 200) return BlobOutcome::Existing;
  if (h.status != 404) expect_status(h, {200, 404}, what, t_.host());

  // Neither a HEAD hit nor a mount reads the blob: a store that holds it lazily (its bytes
  // still in a registry) fetches it only now, when it must be uploaded.
  std::int64_t min_chunk = 0;
  bool mounted = false;
  std::string loc = start_upload(dest, desc, &min_chunk, &mounted);
  if (mounted) return BlobOutcome::Mounted;
  try {
    if (!store_.stat(desc.digest)) store_.open(desc.digest);
    if (desc.size <= std::max(opts_.chunk_size, min_chunk)) upload_monolithic(dest, desc, loc);
    else upload_chunked(dest, desc, loc, min_chunk);
  } catch (...) {
    // Cancel the session; failures to do so are ignored (the registry expires it).
    try {
      Call del;
      del.method = "DELETE";
      del.path = loc;
      del.scopes = {repo_scope(dest.repository(), "pull,push")};
      t_.send(del);
    } catch (...) {
    }
    throw;
  }
  return BlobOutcome::Uploaded;
}

void Pusher::push_manifest(const Reference& dest, const oci::Descriptor& desc, const std::string& tag_or_digest,
                           PushResult& res) {
  const std::string what = "push " + quote(dest.str());
  const std::string bytes = store_.read_blob(desc.digest, 4u << 20);
  if (mt::is_index(desc.media_type)) {
    auto idx = oci::Index::parse(bytes, what, desc.media_type);
    for (const auto& d : idx.manifests) push_manifest(dest, d, d.digest.str(), res);
  } else {
    auto m = oci::Manifest::parse(bytes, what, desc.media_type);
    std::vector<oci::Descriptor> blobs{m.config};
    for (const auto& l : m.layers)
      if (!mt::is_nondistributable_layer(l.media_type)) blobs.push_back(l);
    std::mutex mu;
    run_parallel(
        blobs.size(), opts_.jobs,
        [&](std::size_t i) {
          auto out = push_blob(dest, blobs[i]);
          if (opts_.origins) opts_.origins->record(blobs[i].digest, dest.registry(), dest.repository());
          std::lock_guard lk(mu);
          if (out == BlobOutcome::Existing) res.blobs_existing++;
          else if (out == BlobOutcome::Mounted) res.blobs_mounted++;
          else res.blobs_uploaded++;
          if (opts_.log)
            opts_.log(std::string(out == BlobOutcome::Existing ? "exists  " : out == BlobOutcome::Mounted ? "mounted " : "pushed  ") +
                      blobs[i].digest.str());
        },
        &stop_);
  }
  Call c;
  c.method = "PUT";
  c.path = "/v2/" + dest.repository() + "/manifests/" + tag_or_digest;
  c.scopes = {repo_scope(dest.repository(), "pull,push")};
  c.headers.emplace_back("Content-Type", desc.media_type);
  c.body = bytes;
  c.body_size = static_cast<std::int64_t>(bytes.size());
  c.what = what;
  HttpResponse r = t_.send(c);
  expect_status(r, {201, 200}, what, t_.host());
  if (auto h = r.header("docker-content-digest"); !h.empty() && h != desc.digest.str())
    throw Error(ErrorKind::DataLoss, what + ": " + t_.host() + " stored the manifest as " + h + ", not " + desc.digest.str());
}

PushResult Pusher::push(const oci::Descriptor& root, const Reference& dest) {
  stop_ = false;
  PushResult res;
  std::string target = !dest.tag().empty() ? dest.tag() : root.digest.str();
  if (dest.digest() && *dest.digest() != root.digest)
    throw Error(ErrorKind::InvalidArgument, "push " + quote(dest.str()) + ": the destination digest is not the image's " +
                                                root.digest.str());
  push_manifest(dest, root, target, res);
  res.digest = root.digest;
  return res;
}

}  // namespace cbuild::registry
