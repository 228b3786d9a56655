// Comparing image file trees in tests: flatten layer tars into a rootfs (whiteouts applied),
// then list the tree in a canonical, diffable form.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cbuild::test {

// Applies each layer file (gzip, zstd or plain tar) in order onto `root` as a plain rootfs:
// whiteouts delete, opaque markers clear. Uses the real overlay::Applier (flatten mode).
void flatten_layers(const std::vector<std::filesystem::path>& layers, const std::filesystem::path& root);

// One line per entry under `root`, sorted by path: "PATH TYPE MODE UID:GID SIZE DETAIL" where
// DETAIL is the content's sha256 (files), the target (symlinks) or major,minor (devices).
// mtimes are left out (builders legitimately differ). Paths in `ignore` (and below them) are
// skipped.
std::string tree_listing(const std::filesystem::path& root, const std::vector<std::string>& ignore = {});

// The lines that differ between two listings, as "- line" / "+ line", or "" when equal.
std::string listing_diff(const std::string& expected, const std::string& actual);

}  // namespace cbuild::test
