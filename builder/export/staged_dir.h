// StagedDir — a directory export (type=local, type=oci,tar=false) that reaches its destination
// only when it is complete.
//
// The exporter writes everything into path(), a staging directory on the destination's
// filesystem; commit() then publishes it:
//  - DEST missing (or an empty directory): the staging directory is renamed to DEST (its parents
//    are created first, as BuildKit's exporters do);
//  - DEST an existing directory: the staged entries are moved into it, merging like BuildKit's
//    local exporter (`-o .` must not wipe the user's files): an entry already in DEST is
//    replaced, except that a directory onto a real directory is merged and takes the staged
//    directory's mode, owner and times. Symlinks already in DEST are never followed.
// Every step that reads blobs, decompresses or fills the disk happens before commit(), so a
// failed export leaves DEST as it was; commit() itself only renames (and removes what it
// replaces). Destroying an uncommitted StagedDir removes the staging directory.
//
// Errors: cbuild::Error naming DEST (NotFound, PermissionDenied, FailedPrecondition when DEST
// exists and is not a directory). Not thread-safe.
#pragma once

#include <filesystem>
#include <optional>

#include "oci/base/fs.h"

namespace cbuild::builder {

class StagedDir {
 public:
  // Creates the staging directory (mode 0755): inside DEST when DEST is an existing directory,
  // else next to it.
  explicit StagedDir(const std::filesystem::path& dest);
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  const std::filesystem::path& path() const noexcept { return staging_->path(); }
  void commit();

 private:
  std::filesystem::path dest_;
  bool merge_ = false;  // DEST existed (and was not empty) when staging began
  std::optional<TempDir> staging_;
};

}  // namespace cbuild::builder
