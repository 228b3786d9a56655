// Image archives: `save` writes, `load` reads.
//
//   Docker format: manifest.json ([{Config, RepoTags, Layers}]) + repositories + the blobs under
//   blobs/sha256/ (what `docker save` 25+ writes; `docker load` accepts it) and, so OCI tools can
//   read it too, oci-layout + index.json.
//   OCI format: oci-layout + index.json + blobs/sha256/; each index entry is annotated with
//   io.containerd.image.name (the full reference) and org.opencontainers.image.ref.name (the tag).
//
// load_archive() reads either (any compression libarchive detects; old docker archives with
// <id>/layer.tar too). Every blob is ingested and verified against its name (blobs/<alg>/<hex>)
// or its descriptor; manifests and configs keep their exact bytes. Only an archive without
// index.json (old docker format) gets a manifest written for it. The names returned are as the
// archive spells them (io.containerd.image.name, else ref.name, else manifest.json's RepoTags);
// the caller normalizes them (registry::Reference) and tags — so nothing is tagged on failure.
// Every image's layers must decompress to its config's diff_ids (computed while each blob streams
// in, so nothing is read twice); a mismatch is DataLoss naming the image, the layer and both
// DiffIDs, and nothing is returned to tag (the blobs stay, unreferenced, for gc).
// Errors: InvalidArgument (not an archive, malformed metadata), DataLoss (a blob does not match),
// NotFound (a manifest names a blob the archive lacks). A failed load tags nothing.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "oci/base/unique_fd.h"
#include "oci/descriptor.h"
#include "oci/layout_store.h"

namespace cbuild::oci {

enum class ArchiveFormat { Docker, Oci };

struct ArchiveImage {
  std::vector<std::string> names;  // full normalized references (may be empty)
  Descriptor target;               // manifest (or index) descriptor, as in the store's index.json
};

// Writes the archive to `fd` (not closed). Throws on a missing or corrupt blob.
void save_archive(const LayoutStore& store, const std::vector<ArchiveImage>& images, ArchiveFormat format, int fd);

// Writes the OCI format's entries as an image layout directory under `dir` (what skopeo's
// oci:DIR and umoci read; BuildKit's `type=oci,tar=false`): oci-layout, index.json and
// blobs/sha256/<hex>, each blob copied through the store's verified reads. `dir` must exist;
// entries already there are overwritten. Nothing is fsynced and a failure leaves `dir`
// partly written: callers write into a staging directory and rename it into place.
void save_layout(const LayoutStore& store, const std::vector<ArchiveImage>& images, const std::filesystem::path& dir);

struct LoadedImage {
  std::vector<std::string> names;
  Descriptor target;
  Digest config;
};

// Reads an archive from `fd` into the store (blobs only; see above).
std::vector<LoadedImage> load_archive(LayoutStore& store, int fd, const std::string& what);

}  // namespace cbuild::oci
