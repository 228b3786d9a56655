// Helpers shared by the store commands (images, inspect, history, tag, rmi, prune, save, load):
// opening the store from the global options, resolving an IMAGE argument, and docker's
// human-readable sizes and ages.
//
// IMAGE resolution (docker's order): a tag — the argument normalized by Reference::parse
// (`busybox`, `library/busybox:latest` and `docker.io/library/busybox:latest` are one tag) —
// then "name@sha256:…" / "sha256:…" naming a manifest, then an image-ID prefix (the config
// digest, with or without "sha256:"; ambiguous prefixes are refused). An index entry picks the
// manifest of `platform` (the host's when none) by oci::resolve_image's rule, the one FROM,
// `run` and `unpack` use. Throws Error{NotFound} naming the argument, DataLoss for corrupt
// blobs, InvalidArgument for a malformed manifest or config.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/command.h"
#include "oci/image_config.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"

namespace cbuild::cli {

// The store of --root, with the blob fetcher that brings a lazily held layer from its recorded
// registry (registry-client/origin_fetcher.h) when a command reads it.
std::unique_ptr<oci::LayoutStore> open_store(const GlobalOptions& g);

struct StoreImage {
  oci::Descriptor target;          // the index.json entry (manifest or index)
  oci::Descriptor manifest_desc;   // the platform manifest
  oci::Manifest manifest;
  oci::Digest config_digest;       // docker's image ID
  oci::ImageConfig config;
  std::string config_bytes;
  std::vector<std::string> names;  // full references of every tag naming this target
  std::int64_t size() const;       // config + layers, as stored
};

// Loads the image an index.json entry names (verified reads).
// `what` names the image in errors ("image busybox"; the entry's digest when empty).
StoreImage load_store_image(const oci::LayoutStore& store, const oci::Descriptor& entry,
                            const std::optional<oci::Platform>& platform = std::nullopt, std::string_view what = {});
StoreImage resolve_image(const oci::LayoutStore& store, std::string_view arg,
                         const std::optional<oci::Platform>& platform = std::nullopt);
// Only the index.json entry an IMAGE argument names (a whole index for `tag` and `save`,
// whatever platforms it holds). Same lookup and errors as resolve_image.
oci::Descriptor resolve_entry(const oci::LayoutStore& store, std::string_view arg);
// The index.json tag names (full references) whose target matches `target`.
std::vector<std::string> names_of(const oci::LayoutStore& store, const oci::Digest& target);

// "4.26MB", "1.2kB", "512B" (decimal units, 3 significant digits, like docker).
std::string human_size(std::int64_t bytes);
// "2 years ago", "About an hour ago", "N/A" for an empty or malformed time.
std::string human_age(std::string_view rfc3339);
// The 12-hex short ID of a digest (no algorithm).
std::string short_id(const oci::Digest& d);

}  // namespace cbuild::cli

namespace cbuild::cli {
// Prints rows like docker's tabwriter (min width 10, padding 3); the last column is not padded.
void print_table(const std::vector<std::vector<std::string>>& rows);
}  // namespace cbuild::cli
