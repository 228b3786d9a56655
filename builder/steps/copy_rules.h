// The rules of COPY/ADD at the destination, written once: for each entry a CopyPlan lists
// (copy_files.h), what lands where — path, type, mode, owner, link target, hardlink, mtime —
// given what the image already holds there; and through which of the image's symlinks the
// destination resolves (BuildKit resolves it, fs.RootPath, before it copies).
//
// Two writers consume the decisions through CopyTarget: the disk (apply_copy, into a mounted
// rootfs) and the streamed layer (LayerTree, whose tar must equal the diff of what the disk
// writer leaves in an overlay upper). A writer answers what is at a path and performs each
// Landing literally; every docker-parity choice is made here, so a fix is made once.
//
// The rules (BuildKit's fsutil copy, as docker build applies it):
//  - Parents the copy needs that are missing are made 0755 (less the umask, as mkdir(2)) and
//    owned by --chown's ids (0:0 without). One that is a symlink leading to no directory keeps
//    the link, whose owner changes (mkdir meets EEXIST; the walk below then makes the link's
//    target); any other non-directory there is ENOTDIR.
//  - The directory a source directory's contents go into keeps its mode, owner and times when
//    it exists; otherwise it is made exactly 0755, owned like the parents.
//  - A directory recreated only as the way to something below it (CopyItem::lazy_parent) that
//    exists only takes the source's permission bits.
//  - A copied directory is made when missing, then owned and moded as the source (after
//    --chown/--chmod); its mtime is set after everything below it landed, deepest first.
//  - A directory never lands on an existing non-directory, nor a non-directory on a directory
//    (FailedPrecondition, as BuildKit refuses both); a non-directory replaces a non-directory.
//  - Symlinks keep their target and mtime; regular files their content, mode and mtime; files
//    a plan links (CopyItem::link_to) are hardlinks.
//  - A device node lands as an empty regular file with the node's mode, owner rule and mtime:
//    fsutil's copyDevice passes Go's FileMode to mknod(2), whose type bits are not S_IFCHR or
//    S_IFBLK, so the kernel makes a regular file. Fifos (and sockets of an image) are not
//    copied (fsutil's copier returns without an error), but what was at their destination is
//    removed first, as fsutil empties every non-directory target. The build context arrives
//    through fsutil's receiver, which makes a socket a block device: from the context a
//    socket lands as an empty file, a fifo not at all. A 0/0 character device is no exception
//    — it is a file in the image, never a whiteout.
//  - Owners are --chown's ids, else the source's with keep_owner, else 0:0; --chmod replaces
//    the permission bits of every copied entry but symlinks.
//  - A regular file copied from an image (keep_owner) keeps its security.capability, set after
//    the owner (chown(2) clears it), with --chown too; no other xattr reaches docker's layer,
//    and build-context files carry none (copy_files.h).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "builder/steps/copy_files.h"

namespace cbuild::builder {

// What one step of a copy does at one destination path.
struct Landing {
  enum class Op {
    Mkdir,      // a missing parent: mkdir with `mode` (the umask applies), owned uid:gid
    ChownLink,  // a parent that is a symlink leading to no directory: only its owner changes
    IntoDir,    // the missing directory contents go into: made, owned uid:gid, exactly `mode`
    ChmodDir,   // an existing lazily recreated parent: only its permission bits, `mode`
    Dir,        // a copied directory, made when `exists` is false: owned uid:gid, exactly `mode`
    Symlink,    // item->link_target, owned uid:gid, mtime `mtime`
    File,       // item->src's content, owned uid:gid, exactly `mode` (set after the owner), `mtime`
    Hardlink,   // another name of the file landed at item->link_to
    EmptyFile,  // a device node (or a build context's socket): an empty regular file, owned
                // uid:gid, exactly `mode` (set after the owner), `mtime`
    Remove,     // a fifo (or an image's socket), which is not copied: only what was at the
                // path goes (`replace`)
    DirTime,    // a copied directory's mtime, once everything below it landed
  };
  Op op = Op::Mkdir;
  std::string path;      // inside the destination root, cleaned, never ""
  bool exists = false;   // Dir: the directory is already there (kept, re-owned, re-moded)
  bool replace = false;  // non-directories: an existing non-directory is removed first
  std::uint32_t mode = 0, uid = 0, gid = 0;
  struct timespec mtime {};
  bool capability = false;  // File: the source's security.capability goes with it (see above)
  const CopyItem* item = nullptr;  // the planned entry, for all but Mkdir and ChownLink
  int src_root = -1;               // File: the root item->src is read from
};

// A destination the rules write through. Paths are cleaned and inside the destination root.
class CopyTarget {
 public:
  struct Entry {
    bool exists = false;
    mode_t type = 0;  // S_IFMT bits of the entry itself (a symlink is not followed)
  };
  virtual ~CopyTarget() = default;
  // What is at `path`; symlinks on the way are followed inside the root and missing parents
  // are made (0755 less the umask, 0:0), as a write there would make them.
  virtual Entry at(const std::string& path) = 0;
  // Whether `path` is a directory, every symlink (the last one too) followed inside the root.
  virtual bool is_dir(const std::string& path) = 0;
  // Where `path` leads, as overlay::resolve_links answers it over this destination.
  virtual std::string resolve(const std::string& path) = 0;
  virtual void land(const Landing& l) = 0;
};

// The owner and the permission bits an entry copied from `st` gets.
std::pair<std::uint32_t, std::uint32_t> copy_owner(const CopySpec& spec, const struct stat& st);
std::uint32_t copy_mode(const CopySpec& spec, const struct stat& st);
// The owner of the directories a copy (or an ADD's unpack) creates on its way: --chown's ids,
// a user alone being its own group, or 0:0 — never the source's.
std::pair<std::uint32_t, std::uint32_t> created_owner(const CopySpec& spec);

// The decision for one planned entry, given what is at its destination now; nullopt when
// nothing changes there (an existing directory contents go into). Throws
// Error{FailedPrecondition} where the rules refuse it (naming both paths).
std::optional<Landing> decide_landing(const CopyItem& item, const CopySpec& spec, const CopyTarget::Entry& there);

// `dest` (absolute, as the step names it) where the destination's symlinks lead, every one of
// them followed inside the root, the last one too; the trailing "/" (or "/.") that says
// "into" is kept. `COPY f /etc/link.conf` so writes the link's target, and a directory copied
// to /lib/ on a merged-/usr base lands in /usr/lib, the links staying links.
std::string copy_destination(const std::string& dest, CopyTarget& target);

// Writes `plan`, whose sources are in `src_root`, through `target`, the rules above deciding
// every entry. Throws cbuild::Error naming the path.
CopyStats land_copy(int src_root, const CopyPlan& plan, const CopySpec& spec, CopyTarget& target);

}  // namespace cbuild::builder
