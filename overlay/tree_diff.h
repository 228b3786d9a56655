// Tree diff — the OCI changeset of a plain directory against a record of its earlier state,
// for the chroot isolation level (isolation.h), where no overlay upper dir exists.
//
// record_tree() stats every entry (type, mode, owner, size, mtime, ctime, inode, device,
// link count). walk_tree_diff() then gives the entries overlay::walk_diff() gives for the
// upper dir an overlay mount would have collected for the same change, in the same order and
// form, so the layer (and the image digest) is the same:
//  - an entry is changed when it is new or any recorded field differs (ctime catches chmod,
//    chown, xattr and content changes that keep size and mtime);
//  - every directory holding a changed entry is emitted, with its current metadata (overlay
//    copies ancestors up with their lower metadata, which is the unchanged one here);
//  - a name that existed and is gone is a ".wh.NAME" entry (mode 0, 0:0, mtime: now); nothing
//    below a deleted directory is listed;
//  - a directory that replaced an entry of the same name (a different inode or birth time,
//    or a non-directory before) is emitted with ".wh..wh..opq" after it, and everything below it
//    as new — overlayfs makes a directory created over a whiteout opaque;
//  - hardlinks, sockets, xattrs and `exclude` as in differ.h;
//  - with DiffOptions::restore_setid_writes (a step run without CAP_FSETID), a set-id file a
//    write cleared gets its bits back, in the entry and on disk (override_stat.h).
//
// Hardlinks: overlayfs (index=off, as cbuild and docker's overlay2 mount it) copies up only
// the name a step writes, which breaks the link — /b keeps the old content after
// `echo x >> /a`, and the layer holds /a alone. A plain directory shares one inode between the
// names, so a write through one would change (and emit) all of them. separate_hard_links()
// therefore gives each name of a multiply linked entry an inode of its own before a step, as
// every name would be after a copy-up, so the step changes and the diff emits exactly the
// names written, with the content overlay gives. (The alternative, emitting only the written
// name, cannot work: after the write nothing tells which name was used, and the other names
// would show the new content to the rest of the step.) What a step links anew is one inode
// and becomes hardlink entries, as in an upper. Left over: st_nlink reads 1 for such names
// during the step, where overlay reports the lower's count until a copy-up.
//
// Known difference from overlay: a file opened for writing but left unchanged is not
// emitted (overlay copies it up; nothing in a stat shows it). Not thread-safe on the same
// directory. Throws cbuild::Error naming the path.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "overlay/differ.h"

namespace cbuild::overlay {

struct TreeStat {
  mode_t mode = 0;  // st_mode (type and permissions)
  uid_t uid = 0;
  gid_t gid = 0;
  std::int64_t size = 0;
  std::int64_t mtime_sec = 0, ctime_sec = 0;
  long mtime_nsec = 0, ctime_nsec = 0;
  dev_t dev = 0, rdev = 0;
  ino_t ino = 0;
  // Directories: the birth time where the filesystem keeps one (statx), else 0. A directory
  // removed and made again often gets its inode number back; its birth time tells them apart.
  std::int64_t btime_sec = 0;
  std::uint32_t btime_nsec = 0;
};

struct TreeState {
  std::unordered_map<std::string, TreeStat> entries;                   // by relative path
  std::unordered_map<std::string, std::vector<std::string>> children;  // dir ("" = root) → names
};

// Replaces every name but the first (in sorted walk order) of each non-directory below `root`
// that has several links with a copy of its own: content, type, mode, owner, times and
// xattrs; `exclude`d paths are neither walked nor changed. Returns the names replaced.
std::uint64_t separate_hard_links(const std::filesystem::path& root, const std::vector<std::string>& exclude = {});

// The state of every entry below `root`, leaving out `exclude`d paths and their subtrees.
TreeState record_tree(const std::filesystem::path& root, const std::vector<std::string>& exclude = {});

// Calls `visit` for each changeset entry of `root` against `before` (see above); returns the
// entry count.
std::uint64_t walk_tree_diff(const std::filesystem::path& root, const TreeState& before, const DiffOptions& options,
                             const DiffVisitor& visit);

}  // namespace cbuild::overlay
