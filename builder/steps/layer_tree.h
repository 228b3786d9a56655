// LayerTree — the changeset of a COPY/ADD/WORKDIR step, built in memory instead of on disk,
// then streamed as one layer (tar → DiffID → framed compression → digest → store).
//
// Why: writing 100,000 files into an overlay upper only to diff them straight back into a tar
// costs 100,000 slow file creations (plus chown, chmod, utimens each). A COPY needs none of
// them when no later step reads the files from disk; when one does (RUN, COPY --from, cbuild
// run/mount), ensure_snapshots() applies the blob, i.e. the snapshot is written lazily.
//
// The tree is the streamed writer of copy_rules.h (a CopyTarget): it records the landings the
// rules decide, the disk writer (disk_target.h) being the other one.
//
// Contract: after the same sequence of calls, write() emits exactly the entries that
// overlay::write_diff() emits for the upper dir the on-disk path (the same landings through
// DiskTarget, or mkdir_in_root for mkdir_owned, on an overlay merged dir) produces, in the same
// order, so the layer digest is the same. The model follows what overlayfs does to the upper:
//  - a directory an entry is created in (or removed from) is copied up with the lower's
//    owner, mode and xattrs, and its mtime becomes "now"; its ancestors are copied up with
//    their lower mtime (overlayfs restores the parent's times after a copy-up);
//  - chown/chmod/utimens of a lower entry copies it up with the change;
//  - files a plan links (CopyItem::link_to) share an inode: the differ writes the first one
//    it meets as a file and the others as hardlink entries to it;
//  - a lower directory that is a rootless placeholder (overlay/override_stat.h) is copied up
//    as what it stands for, and cbuild's reserved xattrs are never copied up;
//  - new files, symlinks and directories carry no xattrs; fifos and devices are created with
//    the process umask applied and mtime "now", as mknodat does.
// "now" is one timestamp per tree (the on-disk path gives per-entry times of the same moment;
// with SOURCE_DATE_EPOCH both are clamped to the same value), or the time the caller fixes.
//
// The parent filesystem is read through `lower_root`, an fd of a read-only merged view of the
// parent (fs_step.h with_view: its snapshots, materialized from the blobs when missing) or -1
// for an empty parent. Chosen over resolving against the parent's layer entries because a
// view answers symlinks, whiteouts and opaque dirs of any stack exactly, and costs one mount.
// The price: when the parent's top layer is itself streamed (COPY after COPY), the view
// materializes it first (ensure_snapshots applies its blob) — one step's files written once,
// where the on-disk path wrote every step's. A later change can give the tree a lower made of
// the previous step's tree instead;
// the lower is only consulted below directories that exist in it, so a COPY into a new
// directory makes no lookups at all. Paths are resolved inside the root like
// overlay/safe_path.h: ".." stops at the root, absolute symlinks restart at it, and a walk
// that meets more than 40 symlinks fails with ELOOP.
//
// Regular files keep (src_root fd, path) and are opened only when written; the caller keeps
// those fds open until write() returns. Not thread-safe. Throws
// cbuild::Error naming the path, with the errno the on-disk path would have met.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "builder/cache/content_hashes.h"
#include "builder/steps/copy_rules.h"
#include "oci/base/unique_fd.h"
#include "oci/tar_entry.h"
#include "oci/tar_writer.h"

namespace cbuild::builder {

class LayerTree final : public CopyTarget {
 public:
  // `now`: the time given to what the step creates "now" (see above); the clock when unset.
  // A stage without RUN passes its own fixed time (stage_runner.h StageEnv::created).
  explicit LayerTree(int lower_root, std::optional<std::int64_t> now = std::nullopt);
  ~LayerTree();
  LayerTree(const LayerTree&) = delete;
  LayerTree& operator=(const LayerTree&) = delete;

  // Whether `path` (inside the image) is a directory in the merged view, symlinks followed.
  bool is_dir(const std::string& path) override;
  // Where `path` leads in the merged view (overlay::resolve_links: every symlink followed
  // inside the root, the last one too; what is missing kept as written). Cleaned, "" = root.
  std::string resolve(const std::string& path) override;
  // CopyTarget (copy_rules.h): what is at a path, and a landing recorded instead of written.
  // A file's source root must stay open until write() returns.
  Entry at(const std::string& path) override;
  void land(const Landing& l) override;
  // WORKDIR's mkdir -p, as BuildKit does it: symlinks on the way (dangling ones too) are
  // followed inside the root and missing directories are created 0755 (less the umask), owned
  // uid:gid, where they lead; an existing non-directory on the way is FailedPrecondition.
  void mkdir_owned(const std::string& path, std::uint32_t uid, std::uint32_t gid);

  // Streams the changeset into `tar` in the differ's order. Returns the entry count.
  // `known` (optional) gives the content digest a file's stat data vouch for (as for
  // describe()); it is passed to the tar writer (add_file), so the frame cache keys those bytes
  // without hashing them again. A file given a digest that then reads with different stat data
  // fails the write (FailedPrecondition naming it): its bytes may not be the vouched ones.
  using DigestOf = std::function<std::optional<oci::Digest>(const FileStamp&)>;
  std::uint64_t write(oci::TarWriter& tar, const DigestOf& known = {});
  // False when a source file's stat data after write() read it differ from when it was
  // planned: the layer then holds bytes describe() could not have vouched for.
  bool sources_unchanged() const noexcept { return !sources_changed_; }

  // A digest of everything write() would emit: each entry's metadata in order and, for a
  // regular file, `digest_of(its stat data)` — no file is read. The tar's bytes are a function
  // of it (and of the tar writer's options), so it identifies the layer (layer_memo.h).
  // nullopt when digest_of has no digest for some file.
  std::optional<oci::Digest> describe(const std::function<std::optional<oci::Digest>(const FileStamp&)>& digest_of);

  struct Node;

 private:
  struct Found;
  struct Walked;
  Node* root();
  std::optional<struct stat> lower_stat(const std::string& path);
  Found lookup(Node* dir, const std::string& name);
  // Resolves `path` inside the tree, symlinks on the way followed inside the root (the last
  // one too when `follow`); with `create`, missing parents are made as directories owned
  // uid:gid. Errors are "VERB /path: …".
  Walked walk(const std::string& path, bool create, bool follow, std::uint32_t uid = 0, std::uint32_t gid = 0,
              const char* verb = "open");
  Node* copy_up(Node* dir, const std::string& name, const struct stat& st);
  Node* add_node(Node* dir, const std::string& name, std::unique_ptr<Node> n);
  Node* new_dir(Node* dir, const std::string& name, std::uint32_t uid, std::uint32_t gid);
  void remove(Node* dir, const std::string& name);
  template <class Out>
  void visit(Node& n, const std::string& name, Out& out);
  template <class Out>
  void visit_children(Node& dir, Out& out);

  int lower_;
  std::unique_ptr<Node> root_;
  std::string at_path_;                 // the last at(): its walk, for the land() that follows
  std::unique_ptr<Walked> at_walk_;
  std::unique_ptr<SourceFiles> files_;  // while writing: opens the files of one source root
  int files_root_ = -1;
  std::int64_t now_sec_ = 0;
  std::uint32_t now_nsec_ = 0;
  mode_t umask_ = 022;
  bool sources_changed_ = false;
  std::uint64_t link_groups_ = 0;                      // hardlink groups made so far
  std::map<std::uint64_t, std::string> link_first_;    // while visiting: each group's first path
};

}  // namespace cbuild::builder
