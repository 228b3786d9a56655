// Puller — fetches an image from a registry into the local store.
//
// pull(ref): the manifest or index named by the reference's digest (else its tag); from an
// index or Docker manifest list the manifest of the wanted platform (host by default) is
// chosen — or every platform's with all_platforms. Config and layer blobs are fetched in
// parallel, streamed straight into the store's Ingest (which hashes while writing: one pass),
// size-checked while streaming and digest-verified on commit; a download cut off mid-blob is
// resumed with a Range request. Blobs the store already has are not fetched. Manifests are
// stored byte for byte after their blobs. Finally the store is tagged with ref.str() (the full
// normalized reference) → the selected manifest (or the index with all_platforms).
//
// Every layer of an image manifest is checked against its config's rootfs.diff_ids (and their
// count) before the manifest is stored: a fetched layer is decompressed and hashed while it
// streams in (oci::DiffIdSink: no second read), a layer already in the store through its
// DiffIdRecords entry, else read back once. A mismatch is DataLoss naming the reference, the
// layer and both DiffIDs; no manifest is stored and nothing is tagged (blobs fetched so far
// stay, unreferenced, for gc). Foreign layers that are not pulled are not checked here (the
// snapshot that unpacks them checks them).
//
// With lazy_layers (a build's base images), only manifests and configs are fetched: the layers
// the store lacks are recorded in BlobOrigins and left where they are (not checked here either).
//
// Errors: RegistryError / cbuild::Error naming the reference; nothing partial is left in the
// store (an uncommitted Ingest removes its temp file). Not thread-safe itself (one pull at a
// time per Puller); it uses the Transport from several threads.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "oci/descriptor.h"
#include "oci/diff_id.h"
#include "oci/manifest.h"
#include "oci/store.h"
#include "registry-client/blob_origins.h"
#include "registry-client/manifest_fetch.h"
#include "registry-client/reference.h"
#include "registry-client/transport.h"

namespace cbuild::registry {

struct PullOptions {
  std::optional<oci::Platform> platform;  // nullopt: the host's
  bool all_platforms = false;
  int jobs = 4;                         // blobs fetched at once
  int max_resumes = 5;                  // Range resumes per blob
  const BlobOrigins* origins = nullptr;  // where to record which repository blobs came from
  const oci::DiffIdRecords* diff_ids = nullptr;  // remembered layer DiffIDs (else read back)
  bool tag = true;                      // set the tag ref.str() when done
  // Fetch the manifests and configs only: the layers the store lacks stay in the registry,
  // their origins recorded (`origins` is required), to be fetched when read
  // (origin_fetcher.h). Their DiffIDs are checked when they are unpacked, not here.
  bool lazy_layers = false;
  std::function<void(const std::string&)> log;  // one progress line per event, may be empty
};

struct PullResult {
  oci::Descriptor tagged;     // what ref.str() now names in the store
  oci::Descriptor top;        // what the registry returned for the reference (index or manifest)
  std::size_t blobs_fetched = 0;
  std::size_t blobs_present = 0;
  std::uint64_t bytes_fetched = 0;
};

class Puller {
 public:
  Puller(Transport& transport, oci::Store& store, PullOptions opts = {});
  PullResult pull(const Reference& ref);

  // Fetches one blob into the store (skipped when present). Returns true if bytes were moved.
  bool fetch_blob(const Reference& ref, const oci::Descriptor& desc);

 private:
  void pull_manifest_blobs(const Reference& ref, const oci::Descriptor& desc, const std::string& bytes,
                           PullResult& res);
  // fetch_blob; with `diff_id`, a fetched blob's DiffID is computed on the way in and set.
  bool fetch(const Reference& ref, const oci::Descriptor& desc, std::optional<oci::Digest>* diff_id);
  void check_layers(const Reference& ref, const oci::Manifest& m, std::vector<std::optional<oci::Digest>>& computed);

  Transport& t_;
  oci::Store& store_;
  PullOptions opts_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> bytes_{0};
};

}  // namespace cbuild::registry
