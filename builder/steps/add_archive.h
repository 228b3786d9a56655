// ADD of a local archive: docker extracts a source that is a tar — plain, or compressed with
// gzip, bzip2, xz or zstd — into the destination directory instead of copying the file.
// Anything else (including a compressed file that does not hold a tar) is copied as is.
#pragma once

#include <filesystem>

#include "oci/base/unique_fd.h"

namespace cbuild::builder {

// True when the file open at `fd` (read from offset 0, left unchanged) is a tar archive,
// possibly compressed: the decompressed first block carries a valid tar header checksum.
bool is_tar_archive(int fd);

// Extracts the archive at `fd` into `dest_dir` (a directory inside the image; entries are
// resolved inside it, so "../" and symlinks in the archive cannot reach beyond it). Owners and
// modes come from the archive, as docker does. Throws cbuild::Error naming `shown`.
void extract_tar_archive(int fd, const std::filesystem::path& dest_dir, const std::string& shown);

}  // namespace cbuild::builder
