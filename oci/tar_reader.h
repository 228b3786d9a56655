// TarReader — a layer blob (gzip, zstd or plain tar, detected by magic) → a stream of TarEntry
// plus each regular file's data.
//
//   TarReader r(std::move(source));
//   while (auto e = r.next()) { if (e->type == TarType::File) copy_stream(r.data(), sink); }
//
// Entries are normalised to tar_entry.h's form ("./a/" → "a"); the root entry itself ("./")
// is skipped; an entry whose path is empty after normalisation, an unknown entry type or a
// negative size throws InvalidArgument. ".." components are NOT resolved here (the applier
// does that inside its root). Corrupt or truncated input throws DataLoss naming `what`.
// Unread data of an entry is skipped by next(). Memory stays bounded (no whole-blob buffers).
// With `diff_id`, the uncompressed stream is hashed as it is read and compared with it when
// the archive ends: next() returning nullopt means the layer matched its DiffID, and a mismatch
// throws DataLoss naming `what` and both digests from that last next() (so a caller applying a
// layer into a staging dir never publishes content that is not what the image config says).
// Inflating and hashing then run a few chunks ahead on a thread of the reader's own.
// Not thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "oci/digest.h"
#include "oci/stream.h"
#include "oci/tar_entry.h"

namespace cbuild::oci {

class TarReader {
 public:
  // `source` yields the (possibly compressed) layer blob. `what` names it in errors
  // (e.g. "layer sha256:ab…"). Wrap the source in a VerifyingSource to check its digest.
  explicit TarReader(std::unique_ptr<ByteSource> source, std::string what = "layer",
                     std::optional<Digest> diff_id = std::nullopt);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next entry, or nullopt at the end of the archive (after which the underlying source
  // has been drained to EOF, so a VerifyingSource has checked the digest).
  std::optional<TarEntry> next();
  // The current regular file's data (valid until the next call to next()).
  ByteSource& data();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cbuild::oci
