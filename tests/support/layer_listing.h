// Comparing layers entry by entry in tests: what docker's layer and cbuild's hold, in tar
// order, in a diffable form (listing_diff in image_tree.h shows the difference).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/build_project.h"

namespace cbuild::test {

// One line per entry of a layer file (gzip, zstd or plain tar), in tar order: path, type,
// mode, owner, size, link target (a hardlink's too) and each xattr as key=hex(value), sorted.
// mtimes are left out: builders legitimately differ.
std::string layer_listing(const std::filesystem::path& layer);

// The listing of each layer of cbuild's image `name` (a full reference) in `p`, bottom first;
// the layer files are written into `work`.
std::vector<std::string> image_layer_listings(const BuildProject& p, const std::string& name,
                                              const std::filesystem::path& work);

// The listing of each layer of the image DockerPeer::build() saved under `work`.
std::vector<std::string> docker_layer_listings(const std::filesystem::path& work);

}  // namespace cbuild::test
