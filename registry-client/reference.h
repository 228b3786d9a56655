// Reference — an image reference normalized by docker's rules (distribution/reference):
//
//   alpine                      → docker.io/library/alpine:latest
//   localhost:5000/a/b:1@sha256:… keeps host:port, nested path, tag and digest
//
// parse() rejects what docker rejects (uppercase in the repository, a bad tag, a malformed
// digest, a name over 255 characters, a bare 64-hex name) with an InvalidArgument naming the
// reference and the rule it breaks. A Reference is a plain value, immutable, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "oci/digest.h"

namespace cbuild::registry {

class Reference {
 public:
  // Throws Error{InvalidArgument} when `s` is not a valid reference.
  static Reference parse(std::string_view s);
  static std::optional<Reference> try_parse(std::string_view s);

  const std::string& registry() const noexcept { return registry_; }      // "docker.io"
  const std::string& repository() const noexcept { return repository_; }  // "library/alpine"
  // The tag; empty only when the reference names a digest without a tag.
  const std::string& tag() const noexcept { return tag_; }
  const std::optional<oci::Digest>& digest() const noexcept { return digest_; }

  // "docker.io/library/alpine" — registry and repository, no tag or digest.
  std::string name() const;
  // The full normalized form: name[:tag][@digest]. Used as the store's tag name.
  std::string str() const;
  // Docker's short form for display: "alpine:latest", "user/app:1", "quay.io/x/y:2".
  std::string familiar() const;
  // familiar() without tag or digest: "alpine".
  std::string familiar_name() const;
  // The host API requests go to ("registry-1.docker.io" for docker.io).
  std::string api_host() const;
  // The key credential stores use ("https://index.docker.io/v1/" for docker.io, else host).
  std::string credential_key() const;

  // A copy naming `tag` (and no digest) / `digest` (tag kept).
  Reference with_tag(std::string_view tag) const;
  Reference with_digest(const oci::Digest& digest) const;

  friend bool operator==(const Reference&, const Reference&) = default;

 private:
  std::string registry_;
  std::string repository_;
  std::string tag_;
  std::optional<oci::Digest> digest_;
};

// The default registry's names.
inline constexpr std::string_view kDockerHub = "docker.io";

}  // namespace cbuild::registry
