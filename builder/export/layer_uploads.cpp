#include "builder/export/layer_uploads.h"

#include <algorithm>
#include <utility>

#include "oci/base/parallel.h"

namespace cbuild::builder {

LayerUploads::LayerUploads(std::unique_ptr<registry::Transport> transport, registry::Reference dest,
                           const oci::BlobProvider& store)
    : transport_(std::move(transport)), dest_(std::move(dest)), store_(store) {}

LayerUploads::~LayerUploads() {
  // Each stream abandons itself as it goes; in parallel, so a slow registry is waited for once.
  run_parallel(streams_.size(), 4, [&](std::size_t i) { streams_[i].reset(); });
}

registry::BlobStream* LayerUploads::begin() {
  registry::BlobStream::Options o;
  o.reopen = [this](const oci::Descriptor& blob) { return store_.open(blob.digest); };
  auto s = std::make_unique<registry::BlobStream>(*transport_, dest_, std::move(o));
  std::lock_guard lk(mu_);
  streams_.push_back(std::move(s));
  return streams_.back().get();
}

LayerUploads::Settled LayerUploads::finish(const std::vector<oci::Descriptor>& layers,
                                           const std::function<void(const std::string&)>& note) {
  std::vector<registry::BlobStream*> streams;
  {
    std::lock_guard lk(mu_);
    for (auto& s : streams_) streams.push_back(s.get());
  }
  std::mutex mu;
  Settled out;
  run_parallel(streams.size(), 4, [&](std::size_t i) {
    registry::BlobStream& s = *streams[i];
    const bool wanted = s.blob() && std::any_of(layers.begin(), layers.end(), [&](const oci::Descriptor& l) {
                          return l.digest == s.blob()->digest;
                        });
    bool ok = false;
    if (wanted) ok = s.complete();
    else s.abandon();
    std::lock_guard lk(mu);
    if (ok && s.committed()) {
      ++out.streamed;
    } else if (ok) {
      ++out.present;
    } else {
      ++out.abandoned;
      if (wanted && note)
        note("layer " + s.blob()->digest.str() + " was not streamed to " + dest_.str() + " (" + s.failure() +
             "); the push uploads it");
    }
  });
  if (out.streamed > 0 && note)
    note(std::to_string(out.streamed) + " layer(s) uploaded to " + dest_.str() + " while they were built");
  return out;
}

}  // namespace cbuild::builder
