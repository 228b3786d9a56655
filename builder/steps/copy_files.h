// COPY/ADD file semantics, as docker build (BuildKit) applies them, between two directory
// roots: the source (the build context, or another stage's rootfs) and the destination (the
// image rootfs being built, e.g. an overlay merged dir).
//
//  - Sources are paths inside the source root ("/x" and "x" are the same; ".." never climbs
//    out); each may hold wildcards (`*`, `?`, `[...]`, per path component, like Go's
//    filepath.Match). A missing source is an error naming it; a wildcard that matches nothing
//    copies nothing, as in BuildKit, unless the directory it searches is missing (an error).
//  - A source directory copies its *contents*; a symlink named as a source is followed (inside
//    the root); symlinks inside a copied directory are copied as symlinks.
//  - The destination is a directory when it ends in "/" (or is "." / "/"), when there are
//    several sources, or when it already is a directory in the image; otherwise a single file
//    source is copied *to* it. Several sources need a destination ending in "/" (docker's rule).
//  - Regular files hardlinked to each other within one source (a source word, or one match of
//    a wildcard) stay hardlinked in the destination; across sources they are separate files.
//  - Paths `excluded` (.dockerignore) are skipped, with their subtrees.
//  - What each planned entry does where it lands (modes, owners, times, replacing what the
//    image holds) is decided by the rules of copy_rules.h, for both writers.
//  - `exclude` (COPY --exclude) holds .dockerignore-style patterns matched against the path
//    of each entry *relative to the source it came from* (for a wildcard source, to each
//    match), so `--exclude=*.txt dir` skips dir/a.txt but not dir/sub/b.txt (use
//    `**/*.txt`). The source itself is never excluded (BuildKit/fsutil). With `!` exceptions,
//    excluded directories are still searched, and created only when something inside is kept.
//  - `parents` (COPY --parents) keeps each source's path below the source root, or below a
//    "/./" pivot in it: `x/./y/*.txt` copies x/y/a.txt to DEST/y/a.txt. The part after the
//    pivot (the whole source without one) is a .dockerignore-style pattern (`**` spans
//    directories); directories on the way are recreated from the source directories (mode,
//    owner, mtime) only where something below them is copied. The destination is always a
//    directory. A pattern without wildcards must name an existing path.
//
// plan_copy() resolves everything without writing; apply_copy() writes the plan into the
// destination root by those rules (disk_target.h: every path resolved inside it, so a symlink
// in the image cannot redirect a write to the host). content_key() hashes what the plan reads (content, mode, owner, link
// targets — not mtimes) for the build cache. All throw cbuild::Error naming the path.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "builder/cache/content_hashes.h"
#include "oci/base/unique_fd.h"
#include "oci/digest.h"

namespace cbuild::builder {

struct CopySpec {
  std::vector<std::string> sources;  // expanded words, as written after COPY
  std::string dest;                  // absolute path in the image (WORKDIR already applied)
  std::optional<std::uint32_t> uid, gid;  // --chown, resolved to ids
  std::optional<std::uint32_t> chmod;     // --chmod, permission bits
  // True for a source that is an image's rootfs (COPY --from a stage or an image), false for
  // the build context. True keeps the source's owners (without --chown; false makes every
  // entry 0:0) and each regular file's security.capability, --chown or not: the one xattr
  // docker's layers carry (overlay/layer_xattrs.h). Build-context files land without xattrs,
  // as docker build's context transfer delivers them.
  bool keep_owner = false;
  // True for paths (relative to the source root, "/"-separated) to leave out.
  std::function<bool(const std::string&)> excluded;
  std::vector<std::string> exclude;  // --exclude patterns (see above)
  bool parents = false;              // --parents
};

struct CopyItem {
  std::string src;   // path inside the source root ("" for a directory the copy creates)
  std::string dest;  // path inside the destination root, cleaned, never ""
  struct stat st {};  // of the source (followed for a top-level symlink); for created dirs: zeroed
  std::string link_target;  // symlinks
  // A directory recreated only because something below it is copied (--parents, or a kept
  // entry under an excluded directory): when the destination already has it, only its
  // permission bits are set (owner and times stay), as fsutil does.
  bool lazy_parent = false;
  // Regular files: the dest of an earlier item of the same source (one wildcard match, or one
  // --parents source) with the same inode, "" otherwise. BuildKit's copy keeps the hardlinks
  // a source holds (and only within it): this item is written as a link to that one.
  std::string link_to;
  // The destination a source directory's contents are copied into (fsutil's top level): an
  // existing directory there keeps its mode, owner and times; otherwise it is made like a
  // parent directory (0755, owned by --chown's ids or root), whatever the source's mode.
  bool into = false;
};

struct CopyPlan {
  std::vector<CopyItem> items;  // parents before children, in source walk order
  std::vector<std::string> parents;  // destination parent dirs that may need creating
  // The destination whose being a directory decided the plan ("" when only the spelling did):
  // a plan made without dest_is_dir stays valid where this path is not a directory.
  std::string dest_probe;
};

// Opens the regular files a plan reads, in plan order: each through its parent directory,
// opened inside the root once for all its entries (a plan lists a directory's entries
// together), so a file costs one openat of a single name (O_NOFOLLOW) instead of a walk of its
// whole path. Not thread-safe.
class SourceFiles {
 public:
  explicit SourceFiles(int src_root) : root_(src_root) {}
  UniqueFd open(const std::string& src);

 private:
  int root_;
  std::string dir_;  // of dir_fd_, root-relative
  UniqueFd dir_fd_;
};

// `dest_is_dir(path)` says whether `path` (cleaned, inside the destination) is already a
// directory in the image; may be null (then only the trailing "/" rule applies). A source that
// is a rootless placeholder (overlay/override_stat.h) is planned as what it stands for (its
// CopyItem::st) when rootless, for sources that keep owners (stages and images, which live in
// snapshots; a context holds no placeholders).
// Throws Error{InvalidArgument} for a malformed --exclude or --parents pattern or override.
CopyPlan plan_copy(int src_root, const CopySpec& spec, const std::function<bool(const std::string&)>& dest_is_dir);

struct CopyStats {
  std::uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0;
};

CopyStats apply_copy(int src_root, int dest_root, const CopyPlan& plan, const CopySpec& spec);

// sha256 over what the plan reads: per item its destination, type, mode (after chmod), owner
// (after chown), link target, file content hash and, with keep_owner, the file's
// security.capability (it lands with the file). With `hashes`, a file whose stat data (the
// plan's) is recorded there is not read, and the hash of one that is read is recorded when its
// stat data did not change while it was read. With more than a few MiB to read, files are
// hashed on up to 4 threads (the key is the same).
oci::Digest content_key(int src_root, const CopyPlan& plan, const CopySpec& spec, ContentHashes* hashes = nullptr);

// The paths (inside the source root, sorted) a source with wildcards matches, .dockerignore
// (`spec.excluded`) applied; none is an empty result, not an error.
std::vector<std::string> expand_source(int src_root, const std::string& source, const CopySpec& spec);

// Go filepath.Match over one path component pattern (no "/" inside). Exposed for tests.
bool match_component(std::string_view pattern, std::string_view name);

}  // namespace cbuild::builder
