// TarEntry — one entry of a layer tar, as the tar writer takes it and the tar reader yields it.
// The shared vocabulary between oci/ (tar_writer.h, tar_reader.h) and overlay/ (applier, differ).
//
// Paths are relative to the layer root, "/"-separated, with no leading "/" or "./" and no
// trailing "/" (the root itself is never an entry). Readers normalise what they read to this
// form and reject names that are empty after normalisation; they do NOT resolve ".." — that is
// the applier's job (inside the root, see overlay/safe_path.h).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cbuild::oci {

enum class TarType : std::uint8_t { File, Dir, Symlink, Hardlink, Char, Block, Fifo };

struct TarEntry {
  std::string path;
  TarType type = TarType::File;
  std::uint32_t mode = 0644;  // permission bits incl. setuid/setgid/sticky; no S_IFMT bits
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string uname;  // optional, written only when non-empty
  std::string gname;
  std::int64_t size = 0;  // regular files only
  std::int64_t mtime_sec = 0;
  std::uint32_t mtime_nsec = 0;
  std::string link_target;  // Symlink: target as stored; Hardlink: path of the earlier entry
  std::uint32_t dev_major = 0;
  std::uint32_t dev_minor = 0;
  // Extended attributes (name → raw value), sorted by name when written.
  std::vector<std::pair<std::string, std::string>> xattrs;
};

// The header fields a file's stat gives: permission bits (setuid, setgid, sticky included),
// owner and mtime to the nanosecond. The type, size and links are the caller's to fill.
inline TarEntry tar_entry_from_stat(std::string path, const struct stat& st) {
  TarEntry e;
  e.path = std::move(path);
  e.mode = st.st_mode & 07777;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.mtime_sec = st.st_mtim.tv_sec;
  e.mtime_nsec = static_cast<std::uint32_t>(st.st_mtim.tv_nsec);
  return e;
}

}  // namespace cbuild::oci
