// Base images for FROM and COPY --from=IMAGE: found in the local store by their normalized
// reference (docker's rules: "busybox" is docker.io/library/busybox:latest), pulled through
// the registry client when absent (or always with --pull). An index picks the manifest of the
// requested platform (the host's by default). A platform that was asked for (--platform, FROM
// --platform) must be the image's: a single-platform image of another one is refused, naming
// both; with none asked for, a single-platform image is used as it is, as docker does.
//
// With a lease, every blob of the image (the index if any, the manifest, the config and the
// layers) is named in it as soon as the reference resolves and before it is read, so a
// concurrent `rmi` or `prune` cannot take a base the build is using: the lease keeps them
// until the build has written the image that references them.
#pragma once

#include <optional>
#include <string>

#include "builder/plan/build_options.h"
#include "builder/plan/progress.h"
#include "builder/steps/stage_runner.h"
#include "oci/diff_id.h"
#include "oci/layout_store.h"
#include "oci/store.h"
#include "registry-client/blob_origins.h"

namespace cbuild::builder {

// The image `ref` names in `store`, or nullopt when no tag names it. The state's cache key is
// "image:<config digest>" (the image ID: one key however the image came in). Throws
// cbuild::Error for a malformed reference, a corrupt or inconsistent manifest/config, an index
// without the platform, or (NotFound) an image of another platform than a non-empty `platform`.
std::optional<ImageState> load_local_image(const oci::Store& store, const std::string& ref, const std::string& platform,
                                           oci::Lease* lease = nullptr);

// load_local_image, pulling first when the image is absent or `options.pull` is set.
// Throws NotFound naming the reference when it exists nowhere. `diff_ids`: the store's
// remembered layer DiffIDs, used by the pull (registry::PullOptions::diff_ids).
// With `origins`, the pull is lazy, as BuildKit's: the manifest and config come in (and the
// tag), the layers the store lacks stay in the registry with their origins recorded, and are
// fetched when a step reads them (the store's blob fetcher, registry-client/origin_fetcher.h) — a
// build whose steps all hit never downloads them. `cbuild pull` stays eager.
ImageState load_image(oci::Store& store, const std::string& ref, const std::string& platform,
                      const BuildOptions& options, Progress& progress, oci::Lease* lease = nullptr,
                      const oci::DiffIdRecords* diff_ids = nullptr, const registry::BlobOrigins* origins = nullptr);

}  // namespace cbuild::builder
