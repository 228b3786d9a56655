// StageRunner — runs the steps of one ExecStage on top of its base, consulting the build cache
// before each step. Produces an ImageState: the config document and the layer stack, plus the
// cache key that chains into whatever builds on it (a later stage's FROM, the final image).
//
// Steps report to Progress (started / CACHED / done with layer and frame counts / failed).
// Failures throw cbuild::Error whose message starts with "FILE:LINE:" and names the
// instruction; RUN failures carry the exit code and the last lines of output. A RUN in an
// image of a platform this machine cannot run (run_platform.h) fails before it starts. A step
// stopped by cancellation (Ctrl-C, or the build cancelling this stage because another failed;
// oci/base/cancel.h) reports step_cancelled and throws Error{Cancelled} ("interrupted" or
// "cancelled"), whatever the step's own error was. Nothing stays mounted and no partial blob
// or snapshot is left (see fs_step.h).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "builder/plan/build_options.h"
#include "builder/cache/cache.h"
#include "builder/cache/cache_export.h"
#include "builder/cache/cache_import.h"
#include "builder/plan/exec_plan.h"
#include "builder/steps/fs_step.h"
#include "builder/plan/progress.h"

namespace cbuild::builder {

struct ImageState {
  ConfigDoc config;
  LayerStack stack;
  std::string cache_key;  // chains the next step's key
};

// Everything a stage needs from the build around it. Callbacks give access to other stages
// and images without the runner knowing how they are produced (or pulled).
struct StageEnv {
  FsContext& fs;
  BuildCache& cache;
  Progress& progress;
  const BuildOptions& options;
  std::filesystem::path context;   // the build context directory
  std::function<bool(const std::string&)> context_excluded;  // .dockerignore
  std::string dockerfile;          // shown in messages
  // The finished state of stage `index`. The executor runs every stage a stage needs (FROM,
  // COPY --from, RUN --mount from; stage_graph.h) before it, so this never waits; a stage
  // not run yet is Error{Internal}.
  std::function<const ImageState&(int index)> stage_result;
  // The state of an image by reference (from the store, pulled when missing).
  std::function<ImageState(const std::string& ref)> image;
  std::function<int()> next_vertex;  // progress step numbers, unique in the build
  // All of the above are shared by stages running on different threads: the callbacks and
  // the stores they reach are thread-safe.
  // Unix seconds for the history entries and Created of the steps: SOURCE_DATE_EPOCH when
  // given; else the time of what the stage starts from — the base image's Created, the base
  // stage's, the epoch (0) for scratch — until the stage's first RUN step, and from there on
  // `clock` (what RUN writes depends on when it ran anyway, and docker takes the clock for
  // every step). So a build without RUN is a function of its inputs: one image ID each time.
  std::int64_t created = 0;
  // Set while `created` is not the clock: the mtime COPY, ADD and WORKDIR give what they create
  // at build time (directories, here-documents), so those layers carry no clock either.
  std::optional<std::int64_t> fixed_now;
  // The build's clock; unset with SOURCE_DATE_EPOCH. run_stage switches `created`, `fixed_now`
  // and `key_inputs` to it at the first RUN step.
  std::optional<std::int64_t> clock;
  // Appended to every step key of the stage: what the inputs alone do not say about the
  // result — how layers are encoded (codec, level, SOURCE_DATE_EPOCH clamp) and which rule
  // gave `created`. layer_key_inputs is the encoding part alone, for the keys of layers
  // that stand on their own (COPY --link).
  std::string key_inputs;
  std::string layer_key_inputs;
  // --cache-from: consulted when `cache` misses (a hit is put into `cache` too); may be null.
  CacheImports* imports = nullptr;
  // --cache-to: every record a step of stage `stage` used or made is noted; may be null.
  CacheLog* log = nullptr;
  int stage = -1;
};

// A fresh config document for FROM scratch on the host platform (or `platform`).
ConfigDoc scratch_config(const std::string& platform);
// Applies docker's FROM defaults to a base config: PATH in Env when the image has none.
void apply_from_defaults(ConfigDoc& config);

ImageState run_stage(const ExecStage& stage, ImageState base, StageEnv& env);

}  // namespace cbuild::builder
