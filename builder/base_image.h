// Base images for FROM and COPY --from=IMAGE: found in the local store by their normalized
// reference (docker's rules: "busybox" is docker.io/library/busybox:latest), pulled through
// the registry client when absent (or always with --pull). An index picks the manifest of the
// requested platform (the host's by default).
#pragma once

#include <optional>
#include <string>

#include "builder/build_options.h"
#include "builder/progress.h"
#include "builder/stage_runner.h"
#include "oci/store.h"

namespace cbuild::builder {

// The image `ref` names in `store`, or nullopt when no tag names it. The state's cache key is
// "image:<manifest digest>". Throws cbuild::Error for a malformed reference, a corrupt or
// inconsistent manifest/config, or an index without the platform.
std::optional<ImageState> load_local_image(const oci::Store& store, const std::string& ref, const std::string& platform);

// load_local_image, pulling first when the image is absent or `options.pull` is set.
// Throws NotFound naming the reference when it exists nowhere.
ImageState load_image(oci::Store& store, const std::string& ref, const std::string& platform,
                      const BuildOptions& options, Progress& progress);

}  // namespace cbuild::builder
