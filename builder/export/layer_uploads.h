// LayerUploads — the layer streams of a build that pushes (--push): each layer a step of the
// final image's stages writes is uploaded to the first push destination while it is written
// (registry-client/blob_stream.h), so the push that follows finds it there instead of sending
// it after the build. finish() settles them before the push: a stream whose layer is in the
// image is waited for and committed; a layer the registry turns out to have already is not
// waited for; every other stream is abandoned. Whatever a stream fails at, the push uploads
// that layer itself: the image pushed is the same either way.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "oci/descriptor.h"
#include "oci/store.h"
#include "registry-client/blob_stream.h"
#include "registry-client/reference.h"
#include "registry-client/transport.h"

namespace cbuild::builder {

class LayerUploads {
 public:
  // `store` holds each layer once its writer is done: a stream the registry fell behind on
  // sends the rest from there (BlobStream::Options::reopen).
  LayerUploads(std::unique_ptr<registry::Transport> transport, registry::Reference dest, const oci::BlobProvider& store);
  // Abandons the streams finish() did not settle (a failed or interrupted build).
  ~LayerUploads();
  LayerUploads(const LayerUploads&) = delete;
  LayerUploads& operator=(const LayerUploads&) = delete;

  // A new stream, owned here. Thread-safe.
  registry::BlobStream* begin();

  struct Settled {
    std::size_t streamed = 0;   // layers the registry now holds from a stream
    std::size_t present = 0;    // layers the registry had already (the stream was dropped)
    std::size_t abandoned = 0;  // streams given up or not needed (their layers push as usual)
  };
  // Settles every stream (see above) for an image with `layers`; `note` hears one line per
  // stream that failed, naming the layer and why, and how many layers are in place.
  Settled finish(const std::vector<oci::Descriptor>& layers, const std::function<void(const std::string&)>& note);

 private:
  std::unique_ptr<registry::Transport> transport_;
  registry::Reference dest_;
  const oci::BlobProvider& store_;
  std::mutex mu_;
  std::vector<std::unique_ptr<registry::BlobStream>> streams_;
};

}  // namespace cbuild::builder
