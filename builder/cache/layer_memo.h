// LayerMemo — streamed layers already in the store, found by what they hold, so a COPY that
// produces a layer the store has (a --no-cache rebuild, the same files copied again) reads,
// hashes, compresses and writes nothing.
//
// The key is LayerTree::describe() — every entry's metadata in order and every file's content
// digest, taken from ContentHashes by stat data — together with everything else that decides
// the blob's bytes: tar_writer_id(), encoder_id() (codec, level, library version), the framing
// parameters and SOURCE_DATE_EPOCH. Equal keys mean equal tar bytes and so the same blob,
// provided each digest is the content of its file: hence only *settled* stamps are used
// (content_hashes.h), and a layer is recorded only when its source files' stat data were the
// same after they were read for it (LayerTree::sources_unchanged()).
//
// A record is $ROOT/cache/layers/<key hex>: the layer's descriptor, DiffID, sizes and frame
// count. It is valid only while the blob is in the store with that size (find() checks). Bump
// kVersion when the tar writer or the framing change what bytes given entries become in a way
// tar_writer_id()/encoder_id() do not show. Thread-safe; records are written atomically.
#pragma once

#include <filesystem>
#include <optional>

#include "oci/digest.h"
#include "oci/layer_writer.h"
#include "oci/store.h"

namespace cbuild::builder {

class LayerMemo {
 public:
  static constexpr const char* kVersion = "cbuild layer memo 1";

  explicit LayerMemo(std::filesystem::path root);

  // The key of a layer whose tree describe()s as `tree`, written with `options`.
  static oci::Digest key(const oci::Digest& tree, const oci::LayerWriterOptions& options);

  // The recorded layer (frames_reused == frames), if its blob is in `blobs` with its size.
  std::optional<oci::LayerResult> find(const oci::Digest& key, const oci::BlobProvider& blobs) const;
  // Records a committed layer. Errors are swallowed: a record not written is only a later miss.
  void put(const oci::Digest& key, const oci::LayerResult& layer) noexcept;
  // Removes every record (prune --all); returns how many. Later finds miss.
  std::size_t clear();

 private:
  std::filesystem::path dir_;
};

}  // namespace cbuild::builder
