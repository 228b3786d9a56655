// Applier — applies the entries of an OCI layer onto a directory, safely.
//
// Every entry path is cleaned as if absolute ("../x" → "x") and its parent resolved inside the
// root (safe_path.h), so symlinks written by this or earlier layers are followed as if the
// root were "/": a layer cannot write, whiteout, chmod or link anything outside it. The leaf
// itself is never followed; an existing leaf is replaced (a directory onto a directory keeps
// its contents and takes the new metadata). Refused with InvalidArgument, naming the entry:
// a hardlink whose target climbs out of the layer or does not exist, a non-directory entry
// that would replace the root. Other entries are contained, never refused, so real images
// with odd symlinks still unpack (as containerd and umoci do).
//
// Modes:
//  - Overlay: the directory is a snapshot that will be an overlay lower/upper: ".wh.NAME"
//    becomes a 0/0 character device, ".wh..wh..opq" the opaque xattr (whiteout.h).
//  - Flatten: the directory is a plain rootfs (cbuild unpack): ".wh.NAME" deletes NAME,
//    ".wh..wh..opq" deletes what earlier layers put in that directory.
// Owners are applied when `same_owner` (default: running as root). Overlay-private xattrs in a
// layer are dropped (they would fake opaque dirs or redirects); an entry carrying one of
// cbuild's reserved xattrs (override_stat.h) is refused with InvalidArgument (it would forge
// the entry's stat). In a user namespace (rootless), a device node or fifo that cannot be
// made, or an owner outside the mapping, becomes a placeholder recording the real values
// (override_stat.h), in both modes, and (Overlay mode) a setuid/setgid regular file carries
// the same record with its mtime, so a RUN's write that clears the bits is seen; a symlink owned outside the mapping is refused
// (FailedPrecondition), as are trusted.* and security.* xattrs the namespace cannot set. Directory mtimes are set in
// finish(), after their contents exist. Not thread-safe; one Applier per layer.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_set>
#include <vector>

#include "oci/base/unique_fd.h"
#include "oci/stream.h"
#include "oci/tar_entry.h"
#include "oci/tar_reader.h"
#include "overlay/user_namespace.h"
#include "overlay/whiteout.h"

namespace cbuild::overlay {

enum class ApplyMode { Overlay, Flatten };

struct ApplyOptions {
  ApplyMode mode = ApplyMode::Overlay;
  XattrNamespace xattr_namespace = overlay_xattr_namespace();
  bool same_owner = ::geteuid() == 0;
  // Rootless placeholders for what the user namespace cannot write (override_stat.h). False
  // for a directory no cbuild reader will read through them (a build context from stdin):
  // such an entry is then refused, naming it and the limit.
  bool placeholders = true;
};

struct ApplyStats {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;  // regular file data written
};

class Applier {
 public:
  // `root` must be an existing directory. Throws NotFound otherwise.
  Applier(const std::filesystem::path& root, ApplyOptions options = {});

  // Applies one entry. For a regular file `data` yields entry.size bytes. Throws
  // cbuild::Error naming the entry; the directory is then partially applied (callers apply
  // into a temp snapshot and discard it on failure).
  void apply(const oci::TarEntry& entry, oci::ByteSource* data);
  // Sets deferred directory mtimes. Call once after the last entry.
  void finish();
  const ApplyStats& stats() const noexcept { return stats_; }

 private:
  void apply_whiteout(const std::string& dir, const std::string& base);
  void write_file(int dirfd, const std::string& leaf, const oci::TarEntry& e, oci::ByteSource* data,
                  const std::string& shown);
  // `placeholder`: a regular file stands for the device node `e` (override_stat.h);
  // `kept_dir`: `e` is a directory applied onto one an earlier layer made.
  void set_metadata(int dirfd, const std::string& leaf, const oci::TarEntry& e, const std::string& shown,
                    bool placeholder, bool kept_dir);

  std::filesystem::path root_path_;
  UniqueFd root_;
  ApplyOptions options_;
  ApplyStats stats_;
  std::unordered_set<std::string> written_;  // cleaned paths this layer created (Flatten opaque)
  struct DirTime {
    std::string path;
    std::int64_t sec;
    std::uint32_t nsec;
  };
  std::vector<DirTime> dir_times_;
  // The parent directory of the previous entry, reused while nothing was removed or turned
  // into a symlink (only a removal can change how an existing directory path resolves).
  std::string cached_dir_;
  UniqueFd cached_fd_;
};

// Applies every entry of `reader` onto `root`; returns the stats. Checks cancellation.
ApplyStats apply_layer(oci::TarReader& reader, const std::filesystem::path& root, ApplyOptions options = {});

}  // namespace cbuild::overlay
