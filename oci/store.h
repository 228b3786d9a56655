// The content store interfaces. oci::Store (layout_store.h) is the $ROOT OCI image layout that
// implements all three; registry::Puller implements BlobProvider for remote blobs.
//
//   BlobProvider — read blobs by digest; every read is verified (size and digest at EOF).
//   Ingester     — write blobs transactionally: tmp file → verify → fsync → rename.
//   TagIndex     — the tags in index.json (org.opencontainers.image.ref.name = full reference).
//
// Thread-safety: a Store may be used from several threads; each Ingest and each source is
// used by one thread. Writers in other processes are serialised by flock on index.json.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/stream.h"

namespace cbuild::oci {

class BlobProvider {
 public:
  virtual ~BlobProvider() = default;
  // Size of a blob, or nullopt if absent. Never throws NotFound.
  virtual std::optional<std::int64_t> stat(const Digest& digest) const = 0;
  // A source that yields the blob and throws Error{DataLoss} at EOF if the bytes do not match
  // `digest` (or their count does not match the stored size). Throws NotFound when absent.
  virtual std::unique_ptr<ByteSource> open(const Digest& digest) const = 0;
  // Reads a whole (small) blob, verified. Throws NotFound / DataLoss / ResourceExhausted.
  std::string read_blob(const Digest& digest, std::size_t max_size = 64u << 20) const;
};

// One blob being written. Write bytes, then commit(); destroying an uncommitted Ingest removes
// its temp file. commit() verifies the expected digest/size (when given), fsyncs and renames;
// a blob that already exists is fine (the temp file is dropped).
class Ingest : public ByteSink {
 public:
  virtual Digest commit(const std::optional<Digest>& expected = std::nullopt,
                        std::optional<std::int64_t> expected_size = std::nullopt) = 0;
  virtual std::int64_t bytes_written() const = 0;
};

class Ingester {
 public:
  virtual ~Ingester() = default;
  virtual std::unique_ptr<Ingest> begin_ingest() = 0;
  // Stores small bytes (a manifest, a config) and returns their digest. A store may skip the
  // write when it already holds those bytes; the blob is durable when this returns either way.
  virtual Digest put_blob(std::string_view bytes);
};

class TagIndex {
 public:
  virtual ~TagIndex() = default;
  // `name` is the full normalized reference, e.g. "docker.io/library/busybox:1.35".
  virtual std::optional<Descriptor> resolve(std::string_view name) const = 0;
  // Points name at desc (replacing any previous target). desc's blobs must already be durable.
  virtual void set_tag(std::string_view name, const Descriptor& desc) = 0;
  // Returns false if no such tag.
  virtual bool remove_tag(std::string_view name) = 0;
  // (name, descriptor) for every tag, sorted by name.
  virtual std::vector<std::pair<std::string, Descriptor>> tags() const = 0;
};

class Store : public BlobProvider, public Ingester, public TagIndex {};

}  // namespace cbuild::oci
