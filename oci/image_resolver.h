// The one rule that turns what a reference names in a store (a manifest or an image index)
// into the manifest and config of one platform. `cbuild inspect`, `run`, `unpack`, `save`,
// `mount` and FROM all resolve through it, so they agree on the manifest of an index.
//
// An index gives the first entry whose platform matches the wanted one (Platform::matches:
// containerd's rule, variant-aware; an entry without a platform is judged by its config, a
// nested index is searched). The wanted platform is the one asked for, else the host's; never
// "the first manifest": an index without a match is NotFound listing the platforms it has. A
// single manifest is taken as it is when no platform was asked for; with one asked for, its
// config must be of that platform (NotFound naming both otherwise), since a config claiming
// another platform than its files would be silently wrong.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "oci/descriptor.h"
#include "oci/manifest.h"
#include "oci/store.h"

namespace cbuild::oci {

struct ResolvedImage {
  Descriptor top;            // what the reference names (a manifest or an index)
  Descriptor manifest_desc;  // the platform's manifest (== top for a single manifest)
  Manifest manifest;
  std::string config_bytes;  // verified against manifest.config
};

struct ResolveOptions {
  std::optional<Platform> platform;  // asked for; nullopt: the host's, and no check of a single manifest
  std::string what = "image";        // names the image in errors ("image busybox")
  // Called with each blob's digest before it is read (a build's lease holds them).
  std::function<void(const Digest&)> hold;
};

// `top.media_type` may be empty (a digest found in the store without an index.json entry): it
// is then read from the document. Reads are verified (DataLoss on a corrupt blob); a malformed
// document is InvalidArgument; no matching manifest is NotFound.
ResolvedImage resolve_image(const BlobProvider& store, const Descriptor& top, const ResolveOptions& options);

}  // namespace cbuild::oci
