// BlobOrigins — which repositories of which registries a stored blob was pulled from (or pushed
// to), so a push to another repository of the same registry can ask for a cross-repo mount
// instead of uploading the bytes again.
//
// Kept as an append-only text file "$ROOT/registry/blob-origins", one "DIGEST REGISTRY/REPO"
// line per record. Appends are single write(2)s of one short line with O_APPEND, so several
// processes may record at once; duplicate lines are harmless. A missing file means no origins;
// malformed lines are skipped (the file is only a hint: a wrong origin costs one failed mount).
// Thread-safe.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "oci/digest.h"

namespace cbuild::registry {

class BlobOrigins {
 public:
  // `store_root` is the store's $ROOT; the file lives in $ROOT/registry/.
  explicit BlobOrigins(std::filesystem::path store_root);

  // Records that `digest` exists in `registry`/`repository`. Failures to write are ignored
  // (the record is only an optimisation).
  void record(const oci::Digest& digest, std::string_view registry, std::string_view repository) const;
  // Repositories of `registry` known to hold `digest`, most recent first, without duplicates.
  std::vector<std::string> repositories(const oci::Digest& digest, std::string_view registry) const;
  // Every "REGISTRY/REPO" known to hold `digest`, most recent first, without duplicates.
  std::vector<std::string> locations(const oci::Digest& digest) const;

  const std::filesystem::path& file() const noexcept { return file_; }

 private:
  std::filesystem::path file_;
  mutable std::mutex mu_;
};

}  // namespace cbuild::registry
