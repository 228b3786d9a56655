// The cache artifact: how a build cache travels (--cache-to / --cache-from; docs/cache.md).
//
// An OCI image manifest with artifactType kCacheArtifactType. Its config blob (media type
// kCacheConfigType) is a JSON document with a format version and the records: for each step
// cache key (BuildCache::key), the parent key it chains from, the layer the step added
// (descriptor, DiffID, compression) or none, and the whole image config after the step. Its
// layers are the step layers themselves, so a registry's garbage collection keeps them and a
// push of an image mounts them.
//
// The inline cache (--cache-to type=inline): the same records document as the config blob, as
// the value of the top-level key kInlineCacheKey of the built image's config, holding only
// records whose layers are the image's own (the image's blobs are the cache's blobs). The
// records describe the configs after each step, which never hold the key themselves.
//
// parse_cache_manifest / parse_cache_config / parse_inline_cache throw Error naming what is
// wrong (not a cache artifact, not JSON, a newer format version, a malformed record, a record
// naming a blob that is not the image's); the importer turns that into a miss with a warning.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "builder/cache/cache.h"
#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/manifest.h"

namespace cbuild::builder {

inline constexpr std::string_view kCacheArtifactType = "application/vnd.cbuild.cache.v1+json";
inline constexpr std::string_view kCacheConfigType = "application/vnd.cbuild.cache.config.v1+json";
inline constexpr std::string_view kInlineCacheKey = "cbuild.cache.v1";
// The newest format this cbuild reads and the one it writes.
inline constexpr int kCacheFormatVersion = 1;

// One record as it travels: the step's key, the key it chains from, and the result.
struct CacheEntry {
  oci::Digest key;
  std::string parent;
  CacheRecord record;
};

// Where a cache is exported to or imported from: an OCI layout directory or a registry
// reference. `name` is how messages name it (the flag and its value).
struct CacheLocation {
  enum class Kind { Directory, Registry } kind = Kind::Directory;
  std::string where;  // the directory, or the reference
  std::string name;
};

struct CacheArtifact {
  std::string config;  // the config blob's bytes
  oci::Descriptor config_desc;
  std::string manifest;  // the manifest's bytes
  oci::Descriptor manifest_desc;
  std::vector<oci::Descriptor> layers;  // the distinct layers, in record order
};

// The artifact holding `entries` (deterministic: the same entries give the same bytes).
CacheArtifact make_cache_artifact(const std::vector<CacheEntry>& entries);

// The inline cache document for an image whose layers are `image_layers`: the entries whose
// layer is one of them (or that add none), sorted by key (deterministic).
std::string make_inline_cache(std::vector<CacheEntry> entries, const std::vector<oci::Descriptor>& image_layers);

// Checks that `bytes` (verified against `desc` by the caller) are a cache artifact manifest.
oci::Manifest parse_cache_manifest(std::string_view bytes);
// The records of a config blob, by key ("sha256:…"). A record whose config does not end in
// its own layer's DiffID is rejected as corrupt.
std::map<std::string, CacheRecord> parse_cache_config(std::string_view bytes);
// The inline records of an image config (NotFound when it has none); a record naming a layer
// that is not in `image_layers` makes the whole field corrupt.
std::map<std::string, CacheRecord> parse_inline_cache(std::string_view config_bytes,
                                                      const std::vector<oci::Descriptor>& image_layers);

}  // namespace cbuild::builder
