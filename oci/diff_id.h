// Layer DiffIDs (the SHA-256 of a layer's uncompressed tar) computed where the bytes already
// flow, and remembered per compressed blob, so that a pull or load can check every layer
// against its image config's rootfs.diff_ids without reading a stored layer back.
//
//   DiffIdSink       takes a layer's compressed bytes as they stream into the store (a pull, a
//                    load) and decompresses and hashes them on a thread of its own, so the
//                    writer does not wait for the inflate; at most `max_buffered` bytes queue
//                    up before write() waits. diff_id() after finish(): the DiffID, or DataLoss
//                    when the bytes are not gzip, zstd or plain data that decodes to the end.
//   diff_id_of_blob  the same for a stored blob (read, verified, decompressed, hashed).
//   DiffIdRecords    $ROOT/cache/diff_ids/<blob hex> = the DiffID that cbuild computed from
//                    that blob's bytes. A blob's content never changes under its digest, so a
//                    record stays true; a lost record only costs a recomputation.
//   check_diff_ids   compares what a manifest's layers decompress to with its config's
//                    rootfs.diff_ids (and their number), throwing DataLoss that names `what`
//                    (the reference), the layer, and both DiffIDs.
//
// DiffIdSink is used by one writer thread; DiffIdRecords is thread-safe (atomic file writes).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/store.h"
#include "oci/stream.h"

namespace cbuild::oci {

class DiffIdSink final : public ByteSink {
 public:
  explicit DiffIdSink(std::string what, std::size_t max_buffered = 8u << 20);
  ~DiffIdSink() override;  // stops and joins the thread (an unfinished stream is abandoned)
  DiffIdSink(const DiffIdSink&) = delete;
  DiffIdSink& operator=(const DiffIdSink&) = delete;

  void write(std::span<const std::byte> data) override;
  using ByteSink::write;
  // Ends the input and waits for the thread. Idempotent.
  void finish() override;
  // After finish(): the DiffID; throws DataLoss naming `what` when the stream did not decode.
  Digest diff_id();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Digest diff_id_of_blob(const BlobProvider& store, const Descriptor& layer, const std::string& what);

class DiffIdRecords {
 public:
  explicit DiffIdRecords(const std::filesystem::path& store_root);
  std::optional<Digest> find(const Digest& blob) const;
  void record(const Digest& blob, const Digest& diff_id) const;
  // Removes the records of blobs no longer in the store (prune). Returns how many went.
  std::size_t remove_orphans() const;

 private:
  std::filesystem::path dir_;
};

// `computed[i]` is what layers[i] decompresses to. `config` names the config blob in errors.
void check_diff_ids(const std::vector<Descriptor>& layers, const std::vector<Digest>& computed,
                    const std::vector<Digest>& claimed, const Digest& config, const std::string& what);

}  // namespace cbuild::oci
