// Small fd-based file helpers shared by every module. All throw cbuild::Error naming the path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "oci/base/unique_fd.h"

namespace cbuild {

// Opens with O_CLOEXEC; throws on failure (NotFound for ENOENT).
UniqueFd open_file(const std::filesystem::path& path, int flags, int mode = 0644);
// Opens relative to a directory fd with O_CLOEXEC; throws on failure.
UniqueFd open_at(int dir_fd, const std::filesystem::path& path, int flags, int mode = 0644);

// Reads a whole (small) file. Throws NotFound / ResourceExhausted if larger than max_size.
std::string read_file(const std::filesystem::path& path, std::size_t max_size = 64u << 20);
// Same, but returns nullopt when the file does not exist.
std::optional<std::string> read_file_if_exists(const std::filesystem::path& path,
                                               std::size_t max_size = 64u << 20);

// Writes all bytes, retrying on EINTR and short writes. Throws with `what` in the message.
void write_all(int fd, const void* data, std::size_t size, std::string_view what);
// Reads up to size bytes (fewer only at EOF). Returns the count.
std::size_t read_full(int fd, void* data, std::size_t size, std::string_view what);

// A file that appears at `path` only when complete: bytes go to a temp file in the same
// directory (".NAME.tmp-<pid>.<start>-XXXX", created O_EXCL), commit() fsyncs it and renames it
// over `path` (then fsyncs the directory). Destroying an uncommitted AtomicFile removes the temp
// file, so a failed writer leaves neither a torn `path` nor a stray temp file; the owner stamp
// in the name lets remove_dead_atomic_temps (owner.h) clear a killed writer's. Errors name
// `path` (NotFound when its directory is missing, PermissionDenied…). Not thread-safe.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& path, int mode = 0644);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();
  int fd() const noexcept { return fd_.get(); }
  const std::filesystem::path& path() const noexcept { return path_; }
  void commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  UniqueFd fd_;
  bool committed_ = false;
};

// How write_file_atomic makes the new file durable.
enum class Durability {
  Fsync,       // fsync the file before the rename and the directory after: survives power loss
  RenameOnly,  // rename only: a killed process leaves the old file or the new one, never a torn
               // one, but after a power loss the file may be missing, empty or garbage — only
               // for files whose reader treats a damaged file as absent (cache records)
};

// Writes `data` to path via a temp file in the same directory, fsync, rename, fsync(dir).
// A crash leaves either the old file or the new one, never a torn one.
void write_file_atomic(const std::filesystem::path& path, std::string_view data, int mode = 0644,
                       Durability durability = Durability::Fsync);

// Creates `path` (O_EXCL) holding `data`, with no fsync: for scratch files in a private temp
// directory, which nothing reads after a crash, so durability would only cost a disk flush.
void write_new_file(const std::filesystem::path& path, std::string_view data, int mode = 0644);

void fsync_fd(int fd, std::string_view what);
void fsync_dir(const std::filesystem::path& dir);

// mkdir -p; throws on failure (an existing directory is fine).
void make_dirs(const std::filesystem::path& dir, int mode = 0755);

// A directory created under `parent` (default: the live ProcessScratch's directory in a store,
// else $TMPDIR, else /tmp; see owner.h) and removed with its contents on destruction. The
// removal never crosses into mount points (it is refused with a log line).
class TempDir {
 public:
  explicit TempDir(const std::filesystem::path& parent = {}, std::string_view prefix = "cbuild-");
  TempDir(TempDir&& o) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const noexcept { return path_; }
  // Keeps the directory (ownership passes to the caller).
  std::filesystem::path release() noexcept;

 private:
  std::filesystem::path path_;
};

// Recursively removes path without following symlinks and without crossing mount points
// (st_dev changes are refused: a live mount is never removed through). Missing is fine.
void remove_tree(const std::filesystem::path& path);

// Removes the files directly in `dir` (a directory of records) and returns how many went.
// Best effort: a missing directory or an entry that cannot be removed is skipped.
std::size_t remove_files_in(const std::filesystem::path& dir);

}  // namespace cbuild
