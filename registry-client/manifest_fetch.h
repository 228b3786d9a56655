// Fetching one manifest or index from a registry, checked: the Accept list names every type
// cbuild reads; Docker schema 1 is refused clearly; an unknown media type, a body whose
// "mediaType" disagrees with Content-Type, a Docker-Content-Digest that does not match the
// bytes, or (when pulled by digest) bytes that do not match the digest are all refused.
// The bytes are returned as received: they are stored and pushed byte for byte.
#pragma once

#include <string>

#include "oci/descriptor.h"
#include "registry-client/reference.h"
#include "registry-client/transport.h"

namespace cbuild::registry {

inline constexpr const char* kManifestAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

struct FetchedManifest {
  oci::Descriptor descriptor;  // media type, digest and size of `bytes`
  std::string bytes;
};

// `ref` names the repository; `tag_or_digest` what to fetch ("1.0", "sha256:…"). `what` names the
// operation for messages. Throws RegistryError (MANIFEST_UNKNOWN, …), Error{InvalidArgument}
// (unknown or schema 1 type), Error{DataLoss} (digest mismatch).
FetchedManifest fetch_manifest(Transport& t, const Reference& ref, const std::string& tag_or_digest,
                               const std::string& what);

// "repository:<repo>:<actions>"
std::string repo_scope(std::string_view repository, std::string_view actions);

}  // namespace cbuild::registry
