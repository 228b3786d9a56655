// Putting test images into a store: the busybox rootfs (busybox_rootfs.h) as a one-layer OCI
// image, tagged with a full reference, so builds can say FROM without a registry.
#pragma once

#include <filesystem>
#include <string>

#include "oci/descriptor.h"
#include "oci/store.h"

namespace cbuild::test {

// Writes `rootfs` as a gzip layer + config + OCI manifest into `store` and tags it `name`
// (a full normalized reference, e.g. "docker.io/library/cbuild-test-busybox:1").
oci::Descriptor put_rootfs_image(oci::Store& store, const std::filesystem::path& rootfs, const std::string& name);

}  // namespace cbuild::test
