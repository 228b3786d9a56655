// Differ — an overlay upper directory → the OCI changeset of one layer.
//
// The walk is depth-first with each directory's entries sorted by their OCI names (a
// directory before its contents, its ".wh..wh..opq" marker right after it), so the same upper
// always gives the same entries. Conversions (whiteout.h): a 0/0 character device NAME becomes
// an empty ".wh.NAME" entry; a directory with the opaque xattr is emitted followed by the
// opaque marker. Of the xattrs only those a layer keeps are written (layer_xattrs.h:
// security.capability, as docker's layers). A rootless placeholder (override_stat.h) is
// written as the entry it stands for. `exclude`d paths (mount-point stubs, init-layer files)
// are left out with their subtrees; sockets are skipped. Files with several links in the
// upper become hardlink entries to the first path. Symlinks are never followed (everything is
// read through fds of the upper).
//
// strip_for_commit() prepares an upper to *become* a snapshot by rename: it removes the
// excluded paths and overlay-private xattrs except the opaque marker, which lower layers need.
// Neither is thread-safe on the same directory. Both throw cbuild::Error naming the path.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/tar_entry.h"
#include "oci/tar_writer.h"
#include "overlay/user_namespace.h"
#include "overlay/whiteout.h"

namespace cbuild::overlay {

struct DiffOptions {
  XattrNamespace xattr_namespace = overlay_xattr_namespace();
  // Paths relative to the upper ("etc/hosts", "proc"), left out with everything below them.
  std::vector<std::string> exclude;
  // For a RUN's upper: told once per walk when rootless placeholders (override_stat.h) the
  // step changed still have the stand-in owner — a chown to exactly that owner cannot be told
  // from a write, so the layer keeps the recorded owner and the user must hear it — and once
  // when set-id files the step wrote get their bits back (a chmod u-s in the same step cannot
  // be told from the write). Unset: not told (a COPY writes placeholders that are new, not
  // changed).
  std::function<void(const std::string&)> warn;
  // For walk_tree_diff() of a chroot step run without CAP_FSETID (isolation.h
  // writes_keep_setid()): a regular file that had setuid/setgid bits before the step and lost
  // only them while its mtime moved (a write cleared them) is written with them and given them
  // back on disk, as a root build's write keeps them (override_stat.h); warn hears the names.
  bool restore_setid_writes = false;
};

// The warning for set-id files whose bits a write cleared and the layer keeps: `who` starts
// it ("rootless mode"), `cause` is what cleared them ("the user namespace").
std::string setid_restored_warning(const std::vector<std::string>& paths, std::string_view who,
                                   std::string_view cause);

// Called once per entry, in order. `fd` is an open read-only fd for regular files, else -1.
using DiffVisitor = std::function<void(const oci::TarEntry& entry, int fd)>;

// Walks `upper` and calls `visit` for each changeset entry. Returns the entry count.
std::uint64_t walk_diff(const std::filesystem::path& upper, const DiffOptions& options, const DiffVisitor& visit);
// Same, writing the entries into a TarWriter (the caller finishes it).
std::uint64_t write_diff(const std::filesystem::path& upper, oci::TarWriter& writer, const DiffOptions& options);

void strip_for_commit(const std::filesystem::path& upper, const DiffOptions& options);

// What strip_for_commit() does for set-id files in a rootless upper (override_stat.h), for a
// snapshot made before the records carried an mtime: every setuid/setgid regular file below
// `dir` gets its record as it stands now.
void renew_setid_records(const std::filesystem::path& dir);

}  // namespace cbuild::overlay
