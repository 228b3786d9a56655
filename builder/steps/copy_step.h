// CopyStep — the filesystem half of one COPY/ADD step: what the step reads (for its cache key)
// and what it writes into a rootfs. The stage runner owns the other half (cache lookup, the
// layer, history); see stage_runner.cpp.
//
// Lifecycle, for one step:
//   CopyStep c(op, dest, src_root, …);
//   c.resolve_owner(rootfs)   optional up front (--link resolves --chown in the base, since it
//                             writes into an empty tree); otherwise write() resolves it in the
//                             rootfs it writes to
//   c.key_inputs()            fetches URL sources not pinned by --checksum (the key needs
//                             their content) and hashes the local sources
//   c.fetch()                 on a cache miss: fetches the pinned URLs, verifying them, so a
//                             failed download never starts a layer
//   c.write(rootfs)           copies (and for ADD, extracts local archives; URLs never are)
//   or, when !c.extracts_archives():
//   c.write(tree, view)       records the same copy in a LayerTree over a read-only view of
//                             the parent (fs_step.h run_streamed_step): no file is written
//
// Both write()s are the rules of copy_rules.h through a different writer (DiskTarget or the
// LayerTree), so they cannot disagree on what lands where.
//
// Sources are read through `src_root` (an fd the caller keeps open: the build context, a
// stage's rootfs, or a folder of heredoc files). Downloads live in a TempDir owned by the
// object, read through an fd it holds: keep the object until a tree it wrote is written.
// Not thread-safe. Throws cbuild::Error naming the path or URL.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "builder/steps/add_url.h"
#include "builder/steps/copy_files.h"
#include "builder/plan/exec_plan.h"
#include "builder/steps/layer_tree.h"
#include "oci/base/fs.h"
#include "registry-client/http.h"

namespace cbuild::builder {

struct CopyStepOptions {
  bool keep_owner = false;  // COPY --from: keep the source's owners when there is no --chown
  std::function<bool(const std::string&)> excluded;  // .dockerignore, for context sources
  UrlFetchOptions fetch;    // ADD URLs (expected digest is taken from the op)
  registry::HttpClient* http = nullptr;  // needed only when the op has URLs
  ContentHashes* hashes = nullptr;       // build-context sources: their hashes by stat data
};

class CopyStep {
 public:
  // `dest` is absolute in the image, WORKDIR applied, a trailing "/" kept when it means "into".
  // write() copies to where it leads: symlinks of the image on the way (the last one too) are
  // followed inside the rootfs, as BuildKit resolves its destination.
  CopyStep(const CopyOp& op, std::string dest, int src_root, CopyStepOptions options);

  // Resolves --chown: names against `rootfs`'s /etc/passwd and /etc/group; a numeric user
  // without a group is uid:uid, as BuildKit does. Throws Error{NotFound} for an unknown name.
  void resolve_owner(const std::filesystem::path& rootfs);
  // True when `chown` ("uid" or "uid:gid") needs no passwd or group file.
  static bool owner_is_numeric(const std::string& chown);
  // The owner --chown resolved to ("" before resolve_owner, or without --chown), "uid:gid".
  std::string owner() const;

  std::string key_inputs();
  void fetch();
  void write(const std::filesystem::path& rootfs);
  // True when an ADD source is a local tar archive: extraction needs the on-disk write().
  bool extracts_archives() const;
  // write(rootfs) recorded into `tree`, whose lower is `view` (names for --chown are looked
  // up there). Not for steps that extract archives.
  void write(LayerTree& tree, const std::filesystem::path& view);

 private:
  struct Url {
    std::string url;
    std::string rel;  // "N/NAME" inside downloads_
    std::optional<FetchedUrl> fetched;
  };
  void fetch_one(Url& u);
  // ADD's sources: the local archives to extract (matches of wildcards included) and the rest.
  struct SplitSources {
    std::vector<std::pair<std::string, UniqueFd>> archives;  // path in the source root, open fd
    std::vector<std::string> plain;                          // sources for the copy rules
  };
  SplitSources split_archives() const;
  // The destination an archive is extracted into (`dest`, already resolved through the image's
  // symlinks), created as BuildKit does (owners included).
  UniqueFd make_archive_dest(int dst, const std::string& dest) const;
  // Both write()s: `archive_root` is the destination's fd when ADD may extract archives
  // into it (the disk), -1 otherwise.
  void write_to(CopyTarget& target, int archive_root);

  const CopyOp& op_;
  std::string dest_;
  int src_root_;
  CopyStepOptions options_;
  CopySpec spec_;
  std::optional<CopyPlan> key_plan_;  // made by key_inputs(), reused by write(tree) when valid
  bool owner_resolved_ = false;
  std::vector<Url> urls_;
  std::optional<TempDir> downloads_;
  UniqueFd downloads_fd_;
};

}  // namespace cbuild::builder
