// LayoutIngest — one blob being written into an OCI layout store (the Ingest of LayoutStore).
//
// Bytes go to a temp file `$ROOT/tmp/ingest-*` (held with flock LOCK_EX for the ingest's life so
// gc can tell a live ingest from one a killed process left behind) while SHA-256 and the size are
// computed; a blob larger than 1 MiB is written with direct I/O from a thread of its own
// (internal/blob_file_writer.h), so hashing and writing overlap and the page cache is bypassed.
// commit() checks them against what the caller expects (DataLoss on mismatch), fsyncs the file
// and hands it to `publish` (LayoutStore renames it into blobs/; the directory is synced before
// the next index write).
// Destroying an uncommitted ingest removes the temp file. A full disk surfaces as
// Error{ResourceExhausted} from write()/commit() and the temp file is removed: nothing torn is
// ever visible under blobs/. Not thread-safe (one writer thread).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "oci/base/unique_fd.h"
#include "oci/digest.h"
#include "oci/store.h"

namespace cbuild::oci {
namespace internal {
class BlobFileWriter;
}

class LayoutIngest final : public Ingest, public ResumableHash {
 public:
  // publish(fd, temp path, digest, size): makes the verified, fsynced temp file the blob.
  using Publish = std::function<void(int, const std::filesystem::path&, const Digest&, std::int64_t)>;

  LayoutIngest(const std::filesystem::path& tmp_dir, Publish publish);
  ~LayoutIngest() override;
  LayoutIngest(const LayoutIngest&) = delete;
  LayoutIngest& operator=(const LayoutIngest&) = delete;

  void write(std::span<const std::byte> data) override;
  using ByteSink::write;
  void finish() override;
  Digest commit(const std::optional<Digest>& expected = std::nullopt,
                std::optional<std::int64_t> expected_size = std::nullopt) override;
  std::int64_t bytes_written() const override { return static_cast<std::int64_t>(written_); }
  Sha256::State hash_state() const override { return hash_.state(); }
  void write_hashed(std::span<const std::byte> data, const Sha256::State& after) override;

  const std::filesystem::path& temp_path() const noexcept { return path_; }
  // Whether the bytes went to disk with direct I/O (large blobs, where the filesystem allows).
  bool direct_io() const noexcept;

 private:
  void abandon() noexcept;
  void check_open() const;
  void store(std::span<const std::byte> data);  // to the file (the hash is the caller's)

  std::filesystem::path path_;
  UniqueFd fd_;
  Publish publish_;
  Sha256 hash_;
  std::unique_ptr<internal::BlobFileWriter> file_;
  std::uint64_t written_ = 0;
  bool finished_ = false;
  bool done_ = false;  // committed or abandoned
};

}  // namespace cbuild::oci
