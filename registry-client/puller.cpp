#include "registry-client/puller.h"

#include <mutex>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/diff_id.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/base/parallel.h"
#include "registry-client/registry_error.h"

namespace cbuild::registry {

namespace mt = oci::media_types;

namespace {

// Forwards a reply body into the ingest (and the layer's DiffID hasher, if any), refusing more
// bytes than the descriptor's size and stopping early when another blob of the pull failed.
class LimitSink : public oci::ByteSink {
 public:
  LimitSink(oci::Ingest& in, oci::ByteSink* tee, std::int64_t limit, const std::atomic<bool>& stop,
            std::atomic<std::uint64_t>& total, std::string what)
      : in_(in), tee_(tee), limit_(limit), stop_(stop), total_(total), what_(std::move(what)) {}
  void write(std::span<const std::byte> data) override {
    if (stop_.load()) throw Error(ErrorKind::Cancelled, what_ + ": stopped because another blob failed");
    if (in_.bytes_written() + static_cast<std::int64_t>(data.size()) > limit_)
      throw Error(ErrorKind::DataLoss, what_ + ": the registry sent more bytes than the descriptor's size " +
                                           std::to_string(limit_));
    in_.write(data);
    if (tee_) tee_->write(data);
    total_ += data.size();
  }

 private:
  oci::Ingest& in_;
  oci::ByteSink* tee_;
  std::int64_t limit_;
  const std::atomic<bool>& stop_;
  std::atomic<std::uint64_t>& total_;
  std::string what_;
};

}  // namespace

Puller::Puller(Transport& transport, oci::Store& store, PullOptions opts)
    : t_(transport), store_(store), opts_(std::move(opts)) {}

bool Puller::fetch_blob(const Reference& ref, const oci::Descriptor& desc) { return fetch(ref, desc, nullptr); }

bool Puller::fetch(const Reference& ref, const oci::Descriptor& desc, std::optional<oci::Digest>* diff_id) {
  if (store_.stat(desc.digest)) return false;
  const std::string what = "pull blob " + desc.digest.str() + " of " + quote(ref.str());
  bool allow_range = true;
  for (int round = 0; round < 2; ++round) {
    auto ingest = store_.begin_ingest();
    // A layer is decompressed and hashed as it arrives (on its own thread), never read back.
    std::optional<oci::DiffIdSink> hasher;
    if (diff_id) hasher.emplace("layer " + desc.digest.str() + " of " + quote(ref.str()));
    LimitSink sink(*ingest, hasher ? &*hasher : nullptr, desc.size, stop_, bytes_, what);
    int resumes = 0;
    bool restart = false;
    while (true) {
      check_cancelled();
      Call c;
      c.path = "/v2/" + ref.repository() + "/blobs/" + desc.digest.str();
      c.scopes = {repo_scope(ref.repository(), "pull")};
      c.response_sink = &sink;
      c.what = what;
      const std::int64_t have = ingest->bytes_written();
      if (have > 0) c.headers.emplace_back("Range", "bytes=" + std::to_string(have) + "-");
      HttpResponse r;
      try {
        r = t_.send(c);
      } catch (const ConnectionError& e) {
        if (!e.partial() || ++resumes > opts_.max_resumes || !allow_range) throw;
        if (opts_.log) opts_.log("resuming " + desc.digest.str() + " at byte " + std::to_string(ingest->bytes_written()));
        continue;
      } catch (const Error& e) {
        // A server that ignored our Range sends the whole blob again: start over once without.
        if (have > 0 && e.kind() == ErrorKind::DataLoss && round == 0) {
          restart = true;
          break;
        }
        throw;
      }
      if (r.status == 416 && have > 0 && round == 0) {
        restart = true;
        break;
      }
      expect_status(r, {200, 206}, what, t_.host());
      if (have > 0 && r.status == 200) {
        restart = true;  // Range ignored and the sink took the whole body twice: can't be trusted
        break;
      }
      break;
    }
    if (restart) {
      allow_range = false;
      continue;
    }
    try {
      ingest->commit(desc.digest, desc.size);
    } catch (Error& e) {
      throw e.with_context(what + " from " + t_.host());
    }
    if (hasher) {
      // Only bytes that matched the blob digest are remembered as that blob's DiffID.
      *diff_id = hasher->diff_id();
      if (opts_.diff_ids) opts_.diff_ids->record(desc.digest, **diff_id);
    }
    return true;
  }
  throw Error(ErrorKind::DataLoss, what + ": " + t_.host() + " did not honour a Range request");
}

void Puller::pull_manifest_blobs(const Reference& ref, const oci::Descriptor& desc, const std::string& bytes,
                                 PullResult& res) {
  auto m = oci::Manifest::parse(bytes, "manifest " + desc.digest.str() + " of " + quote(ref.str()), desc.media_type);
  std::vector<oci::Descriptor> blobs;
  blobs.push_back(m.config);
  std::vector<std::size_t> layer_of;  // blobs[i] is m.layers[layer_of[i]] (config: npos)
  layer_of.push_back(std::string::npos);
  for (std::size_t li = 0; li < m.layers.size(); ++li) {
    const auto& l = m.layers[li];
    // Foreign / non-distributable layers live elsewhere (their urls) and are not pulled.
    if (mt::is_nondistributable_layer(l.media_type) && !store_.stat(l.digest)) continue;
    if (opts_.lazy_layers && opts_.origins && !store_.stat(l.digest)) {
      opts_.origins->record(l.digest, ref.registry(), ref.repository());
      continue;
    }
    blobs.push_back(l);
    layer_of.push_back(li);
  }
  // An image's layers must decompress to its config's diff_ids, or it could claim another
  // image's snapshots (keyed by chain IDs made of diff_ids) and poison every build FROM it.
  const bool image = mt::is_config(m.config.media_type);
  std::vector<std::optional<oci::Digest>> computed(m.layers.size());
  std::mutex mu;
  run_parallel(
      blobs.size(), opts_.jobs,
      [&](std::size_t i) {
        bool hash = image && layer_of[i] != std::string::npos;
        bool moved = fetch(ref, blobs[i], hash ? &computed[layer_of[i]] : nullptr);
        if (opts_.origins) opts_.origins->record(blobs[i].digest, ref.registry(), ref.repository());
        std::lock_guard lk(mu);
        (moved ? res.blobs_fetched : res.blobs_present)++;
        if (opts_.log) opts_.log((moved ? "fetched " : "exists  ") + blobs[i].digest.str());
      },
      &stop_);
  if (image) check_layers(ref, m, computed);
  // The manifest goes in after its blobs are durable (and its layers are what it says).
  store_.put_blob(bytes);
  if (opts_.origins) opts_.origins->record(desc.digest, ref.registry(), ref.repository());
}

void Puller::check_layers(const Reference& ref, const oci::Manifest& m,
                          std::vector<std::optional<oci::Digest>>& computed) {
  const std::string what = "pull " + quote(ref.str());
  oci::ImageConfig config =
      oci::ImageConfig::parse(store_.read_blob(m.config.digest), what + ": image config " + m.config.digest.str());
  std::vector<oci::Descriptor> layers;
  std::vector<oci::Digest> got;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const oci::Descriptor& l = m.layers[i];
    if (!computed[i] && opts_.diff_ids) computed[i] = opts_.diff_ids->find(l.digest);
    if (!computed[i]) {
      // Present before this pull (another image's) with no record, or a foreign layer that
      // is not here: read back once when present, and remembered.
      if (!store_.stat(l.digest)) continue;
      check_cancelled();
      computed[i] = oci::diff_id_of_blob(store_, l, "layer " + l.digest.str() + " of " + quote(ref.str()));
      if (opts_.diff_ids) opts_.diff_ids->record(l.digest, *computed[i]);
    }
    layers.push_back(l);
    got.push_back(*computed[i]);
  }
  const auto& claimed = config.rootfs.diff_ids;
  if (claimed.size() != m.layers.size()) oci::check_diff_ids(m.layers, {}, claimed, m.config.digest, what);
  std::vector<oci::Digest> want;
  for (std::size_t i = 0; i < m.layers.size(); ++i)
    if (computed[i]) want.push_back(claimed[i]);
  oci::check_diff_ids(layers, got, want, m.config.digest, what);
}

PullResult Puller::pull(const Reference& ref) {
  stop_ = false;
  bytes_ = 0;
  const std::string what = "pull " + quote(ref.str());
  const std::string target = ref.digest() ? ref.digest()->str() : ref.tag();
  PullResult res;
  FetchedManifest top = fetch_manifest(t_, ref, target, what);
  res.top = top.descriptor;

  if (mt::is_manifest(top.descriptor.media_type)) {
    pull_manifest_blobs(ref, top.descriptor, top.bytes, res);
    res.tagged = top.descriptor;
  } else {
    auto idx = oci::Index::parse(top.bytes, what, top.descriptor.media_type);
    std::vector<oci::Descriptor> chosen;
    const oci::Platform want = opts_.platform ? *opts_.platform : oci::Platform::host();
    for (const auto& d : idx.manifests) {
      if (!mt::is_manifest(d.media_type)) continue;  // nested indexes and artifacts are not followed
      if (opts_.all_platforms) {
        chosen.push_back(d);
      } else if (want.matches(d.platform)) {
        chosen.push_back(d);
        break;
      }
    }
    if (chosen.empty()) {
      std::string avail;
      for (const auto& d : idx.manifests)
        if (d.platform) avail += (avail.empty() ? "" : ", ") + d.platform->str();
      throw Error(ErrorKind::NotFound, what + ": no manifest for platform " + want.str() + " (the index has: " +
                                           (avail.empty() ? "none" : avail) + ")");
    }
    for (const auto& d : chosen) {
      FetchedManifest m = fetch_manifest(t_, ref, d.digest.str(), what);
      oci::verify_blob_bytes(d, m.bytes, what + " manifest " + d.digest.str());
      pull_manifest_blobs(ref, d, m.bytes, res);
    }
    if (opts_.all_platforms) {
      store_.put_blob(top.bytes);
      if (opts_.origins) opts_.origins->record(top.descriptor.digest, ref.registry(), ref.repository());
      res.tagged = top.descriptor;
    } else {
      res.tagged = chosen.front();
    }
  }
  res.bytes_fetched = bytes_.load();
  if (opts_.tag) store_.set_tag(ref.str(), res.tagged);
  return res;
}

}  // namespace cbuild::registry
