// The local exporter (`--output type=local,dest=DIR`, `-o DIR`, `-o -`): the final stage's
// filesystem as files, like BuildKit's local and tar exporters.
//
// The image's layers are read from the store (verified) and applied in order with overlay's
// applier in Flatten mode: whiteouts and opaque markers delete what lower layers put there;
// modes, owners (when running as root), symlink targets, hardlinks, devices and xattrs are
// kept; paths stay inside the root. Nothing of the image config is exported.
//
// Errors: cbuild::Error naming the layer or the destination. A failure before the export is
// complete leaves DEST as it was (see staged_dir.h); a failure while streaming the tar leaves
// a truncated stream on the fd (the caller exits non-zero).
#pragma once

#include <filesystem>
#include <vector>

#include "oci/descriptor.h"
#include "oci/layout_store.h"

namespace cbuild::builder {

// Writes the flattened tree into `dest` (created when missing, merged into when it exists).
void export_local_dir(const oci::LayoutStore& store, const std::vector<oci::Descriptor>& layers,
                      const std::filesystem::path& dest);

// Writes the flattened tree as a deterministic tar stream to `fd` (not closed). The tree is
// flattened into a scratch directory under the store's tmp/ first: a tar of it is the only way
// to get whiteouts resolved and hardlinks right without holding every layer open at once.
void export_local_tar(const oci::LayoutStore& store, const std::vector<oci::Descriptor>& layers, int fd);

}  // namespace cbuild::builder
