// RunMounts — RUN --mount with docker build's (BuildKit's) semantics. Two phases, because the
// step's cache key must be known before anything is mounted:
//
//   RunMounts mounts(op.mounts, env, workdir);   // nothing is opened yet
//   inputs += mounts.key_inputs();               // may run a from= stage or load an image
//   if (cache hit) return;                       // nothing was mounted
//   mounts.attach(spec);                         // fills spec.binds / tmpfs / secrets / env
//   Sandbox::run(spec) …                         // `mounts` owns what RUN sees until destroyed
//
// What each mount is (the step's cache inputs already hold every mount's options):
//  bind    `source` (default: the root) in the build context after .dockerignore, or in
//          from= (a stage of the Dockerfile, else an image). Resolved inside that root, so
//          symlinks and ".." never leave it; excluded files are hidden (a whiteout layer).
//          Read-only, unless rw/readwrite: then writes land in a scratch overlay that is
//          thrown away — never in the layer, never in the context. The key holds the content
//          digest of what a context bind shows, or the result key of the from= stage/image.
//  cache   a CacheMountStore directory (cache_mounts.h) per id (default: the target), kept
//          between builds; sharing=shared|private|locked; a new directory gets mode/uid/gid
//          (0755, 0:0) and, with from=, a copy of `source` in that stage/image. ro works.
//  tmpfs   a fresh tmpfs, size= when given.
//  secret  the --secret with that id (BuildOptions::secrets): a read-only file at `target`
//          (default /run/secrets/<id>), mode 0400, 0:0 unless mode/uid/gid say otherwise;
//          env= also sets that variable for the command. A secret not given is skipped,
//          unless required=true. Its value never reaches the key, a layer, the config or the
//          history.
// Relative targets join WORKDIR. Mounts are set up parents first (by target depth), binds
// before tmpfs before secrets (the sandbox's order).
//
// Errors throw cbuild::Error whose message names the mount ("--mount=type=bind,source=x,
// target=/x: \"/x\" not found in the build context"); the stage runner adds FILE:LINE.
// Whatever attach() set up before a failure is undone by the destructor, which never throws.
// Not thread-safe; one object per RUN.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "builder/cache/cache_mounts.h"
#include "builder/plan/exec_plan.h"
#include "builder/steps/fs_step.h"
#include "builder/steps/stage_runner.h"
#include "oci/base/fs.h"
#include "oci/base/unique_fd.h"
#include "overlay/active_mount.h"
#include "overlay/sandbox.h"

namespace cbuild::builder {

class RunMounts {
 public:
  // `workdir` is the absolute WORKDIR the RUN runs in.
  RunMounts(std::vector<RunMount> mounts, StageEnv& env, std::string workdir);
  RunMounts(const RunMounts&) = delete;
  RunMounts& operator=(const RunMounts&) = delete;
  ~RunMounts();

  // What the mounts add to the step's cache key (beyond their options): one line per mount
  // that reads something. Throws for a missing bind source or an unknown from=.
  std::string key_inputs();

  // Sets every mount up and adds it to `spec`. Throws as described above.
  void attach(overlay::RunSpec& spec);

  struct Root;  // an opened source tree (run_mounts.cpp)

 private:
  Root open_root(const RunMount& m);
  const ImageState& image(const std::string& ref);
  std::string source_key(const RunMount& m);
  TempDir& scratch();
  void attach_bind(const RunMount& m, const std::string& target, overlay::RunSpec& spec);
  void attach_cache(const RunMount& m, const std::string& target, overlay::RunSpec& spec);
  void attach_secret(const RunMount& m, const std::string& target, overlay::RunSpec& spec);

  std::vector<RunMount> mounts_;
  StageEnv& env_;
  std::string workdir_;
  std::map<std::string, ImageState> images_;  // from= images, loaded once
  // Held while RUN runs; members are destroyed bottom-up: fds, then the overlays built on
  // views and scratch dirs, then cache locks, scratch dirs and views.
  std::vector<std::unique_ptr<StackView>> views_;
  std::vector<std::unique_ptr<TempDir>> scratch_;
  std::vector<CacheMountLease> leases_;
  std::vector<std::unique_ptr<overlay::ActiveMount>> overlays_;
  std::vector<UniqueFd> fds_;
};

}  // namespace cbuild::builder
