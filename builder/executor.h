// The build executor: walks the front end's Plan and drives overlay/, registry-client/ and
// oci/ to produce an image in the local store, like `docker build`.
//
// build() parses the Dockerfile, plans it, and runs each needed stage: FROM resolves the base
// (scratch, a stage, a local image, or a pull), config steps edit a copy of the config, COPY/
// ADD/RUN/WORKDIR produce a layer from an overlay upper dir that then becomes the next
// snapshot. Each step consults the BuildCache first. Stages that do not need each other run
// at the same time (up to options.jobs; stage_graph.h), with the same image as a serial build;
// the first failing stage cancels the others and is the error reported. Base images named by
// several stages are loaded (pulled) once. At the end the manifest and config are
// written and handed to the outputs (outputs.h: store tags, archives, directories, pushes).
// --cache-from caches (cache_import.h) are consulted when a step misses the store's cache;
// their layers are fetched when read, the final image's before it is written. --cache-to
// exports (cache_export.h) come after the outputs: mode=min the records of the target stage
// and the stages it is built FROM, mode=max every record the build used or made.
// On a failure of the build nothing stays mounted, no process survives, temp dirs are removed
// and the store keeps only complete blobs (no tag changes); a failed output is reported as
// outputs.h says. Throws cbuild::Error; Dockerfile problems name FILE:LINE.
#pragma once

#include <string>
#include <vector>

#include "builder/plan/build_options.h"
#include "builder/export/outputs.h"
#include "builder/plan/progress.h"

namespace cbuild::builder {

struct BuildResult {
  std::string image_id;         // "sha256:…" of the config, as docker prints it
  std::string manifest_digest;  // "sha256:…"
  std::vector<PushedImage> pushed;  // --push / type=registry: where the image went
  bool wrote_stdout = false;    // an output (dest=-) used stdout: print nothing else there
};

BuildResult build(const BuildOptions& options, Progress& progress);

}  // namespace cbuild::builder
