// Pusher — uploads an image from the local store to a registry.
//
// push(root, dest): for an index, every child manifest first (each PUT by digest), then the
// root manifest/index PUT by dest's tag (or digest) with the exact bytes the store holds, so
// its digest is unchanged. Each manifest's blobs go first, in parallel: HEAD and skip what the
// registry has; a cross-repo mount (POST ?mount=&from=) when BlobOrigins knows another
// repository of the same registry holding it; else a monolithic POST+PUT for blobs up to
// chunk_size, or a chunked upload (PATCH with Content-Range, chunks at least the registry's
// OCI-Chunk-Min-Length) that asks the registry where it stands (GET the upload URL) and
// resumes after a failed chunk. Non-distributable layers are not pushed. The store is opened
// for a blob only when it must be uploaded (after the HEAD and the mount attempt), so an image
// whose layers the store holds lazily (oci/layout_store.h) is pushed without fetching them to
// a registry that has them or can mount them; a blob the store lacks and cannot fetch fails
// the push with the store's error naming it.
//
// Errors: RegistryError / cbuild::Error naming the destination reference; a failed upload
// session is cancelled (DELETE, failures ignored). The store is only read.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "oci/descriptor.h"
#include "oci/store.h"
#include "registry-client/blob_origins.h"
#include "registry-client/reference.h"
#include "registry-client/transport.h"

namespace cbuild::registry {

struct PushOptions {
  int jobs = 4;
  // Blobs above this are uploaded in chunks this big. Monolithic PUTs are cheaper for the
  // registry (no per-chunk hash state), so only really big blobs are chunked.
  std::int64_t chunk_size = 512ll << 20;
  int max_chunk_retries = 5;
  const BlobOrigins* origins = nullptr;  // mount sources; pushed blobs are recorded too
  std::function<void(const std::string&)> log;
};

struct PushResult {
  oci::Digest digest;  // of the root document, as the registry confirmed
  std::size_t blobs_uploaded = 0;
  std::size_t blobs_existing = 0;
  std::size_t blobs_mounted = 0;
};

class Pusher {
 public:
  Pusher(Transport& transport, const oci::BlobProvider& store, PushOptions opts = {});
  PushResult push(const oci::Descriptor& root, const Reference& dest);

  enum class BlobOutcome { Existing, Mounted, Uploaded };
  BlobOutcome push_blob(const Reference& dest, const oci::Descriptor& desc);

 private:
  void push_manifest(const Reference& dest, const oci::Descriptor& desc, const std::string& tag_or_digest,
                     PushResult& res);
  std::string start_upload(const Reference& dest, const oci::Descriptor& desc, std::int64_t* min_chunk,
                           bool* mounted);
  void upload_monolithic(const Reference& dest, const oci::Descriptor& desc, const std::string& location);
  void upload_chunked(const Reference& dest, const oci::Descriptor& desc, std::string location,
                      std::int64_t min_chunk);

  Transport& t_;
  const oci::BlobProvider& store_;
  PushOptions opts_;
  std::atomic<bool> stop_{false};
};

}  // namespace cbuild::registry
