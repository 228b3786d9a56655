#include "oci/base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "oci/base/error.h"
#include "oci/base/owner.h"

namespace cbuild {
namespace fs = std::filesystem;

UniqueFd open_file(const fs::path& path, int flags, int mode) {
  int fd;
  do fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno("open", path.string());
  return UniqueFd(fd);
}

UniqueFd open_at(int dir_fd, const fs::path& path, int flags, int mode) {
  int fd;
  do fd = ::openat(dir_fd, path.c_str(), flags | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno("open", path.string());
  return UniqueFd(fd);
}

std::optional<std::string> read_file_if_exists(const fs::path& path, std::size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("open", path.string());
  }
  UniqueFd owner(fd);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read", path.string());
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_size)
      throw Error(ErrorKind::ResourceExhausted, "file " + quote(path.string()) + " is larger than " +
                                                    std::to_string(max_size) + " bytes");
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string read_file(const fs::path& path, std::size_t max_size) {
  auto data = read_file_if_exists(path, max_size);
  if (!data) throw_errno("open", path.string(), ENOENT);
  return std::move(*data);
}

void write_all(int fd, const void* data, std::size_t size, std::string_view what) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write", what);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

std::size_t read_full(int fd, void* data, std::size_t size, std::string_view what) {
  char* p = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, p + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read", what);
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void fsync_fd(int fd, std::string_view what) {
  if (::fsync(fd) != 0) throw_errno("fsync", what);
}

void fsync_dir(const fs::path& dir) {
  UniqueFd fd = open_file(dir, O_RDONLY | O_DIRECTORY);
  fsync_fd(fd.get(), dir.string());
}

static std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string s(10, '0');
  for (auto& c : s) c = digits[rng() % 36];
  return s;
}

// ".NAME.tmp-<pid>.<start>-XXXX": the owner stamp lets the next writer to the directory remove
// the temp file of a killed one (remove_dead_atomic_temps) and never a live one's.
static std::string temp_name_for(const fs::path& path) {
  return "." + path.filename().string() + ".tmp-" + OwnerStamp::self().str() + "-" + random_suffix();
}

void write_new_file(const fs::path& path, std::string_view data, int mode) {
  UniqueFd fd = open_file(path, O_WRONLY | O_CREAT | O_EXCL, mode);
  try {
    write_all(fd.get(), data.data(), data.size(), path.string());
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

void write_file_atomic(const fs::path& path, std::string_view data, int mode, Durability durability) {
  const bool sync = durability == Durability::Fsync;
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  fs::path tmp = dir / temp_name_for(path);
  {
    UniqueFd fd = open_file(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
    try {
      write_all(fd.get(), data.data(), data.size(), tmp.string());
      if (sync) fsync_fd(fd.get(), tmp.string());
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw_errno("rename", path.string(), err);
  }
  if (sync) fsync_dir(dir);
}

AtomicFile::AtomicFile(const fs::path& path, int mode) : path_(path) {
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  tmp_ = dir / temp_name_for(path);
  int fd;
  do fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  while (fd < 0 && errno == EINTR);
  // The temp name is an implementation detail: the message names the file the caller asked for.
  if (fd < 0) throw_errno("create", path.string());
  fd_.reset(fd);
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::commit() {
  if (committed_) return;
  fsync_fd(fd_.get(), path_.string());
  fd_.reset();
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) throw_errno("rename", path_.string());
  committed_ = true;
  fsync_dir(path_.has_parent_path() ? path_.parent_path() : fs::path("."));
}

void make_dirs(const fs::path& dir, int mode) {
  if (dir.empty()) return;
  if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) == 0) return;
  if (errno == EEXIST) {
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
    throw_errno("mkdir", dir.string(), ENOTDIR);
  }
  if (errno != ENOENT) throw_errno("mkdir", dir.string());
  make_dirs(dir.parent_path(), mode);
  if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) throw_errno("mkdir", dir.string());
}

static void remove_tree_at(int parent_fd, const char* name, dev_t dev, const std::string& shown) {
  struct stat st;
  if (::fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throw_errno("stat", shown);
  }
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) throw Error(ErrorKind::FailedPrecondition, "refusing to remove across a mount point " + quote(shown));
    int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw_errno("open", shown);
    // Directories without write/exec permission (e.g. mode 0) must still be removable by their owner.
    if ((st.st_mode & 0700) != 0700) ::fchmod(fd, st.st_mode | 0700);
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      throw_errno("opendir", shown);
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      names.emplace_back(n);
    }
    for (const auto& n : names) remove_tree_at(::dirfd(d), n.c_str(), dev, shown + "/" + n);
    ::closedir(d);
    if (::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) throw_errno("rmdir", shown);
  } else {
    if (::unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) throw_errno("unlink", shown);
  }
}

std::size_t remove_files_in(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code rm;
    if (fs::remove(it->path(), rm)) ++n;
  }
  return n;
}

void remove_tree(const fs::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw_errno("stat", path.string());
  }
  fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  UniqueFd pfd = open_file(parent, O_RDONLY | O_DIRECTORY);
  remove_tree_at(pfd.get(), path.filename().c_str(), st.st_dev, path.string());
}

TempDir::TempDir(const fs::path& parent, std::string_view prefix) {
  fs::path base = parent.empty() ? default_temp_parent() : parent;
  for (int attempt = 0;; ++attempt) {
    fs::path p = base / (std::string(prefix) + random_suffix());
    if (::mkdir(p.c_str(), 0700) == 0) {
      path_ = p;
      return;
    }
    if (errno != EEXIST || attempt > 100) throw_errno("mkdir", p.string());
  }
}

TempDir::TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }

TempDir::~TempDir() {
  if (path_.empty()) return;
  try {
    remove_tree(path_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cbuild: warning: cannot remove temporary directory: %s\n", e.what());
  }
}

fs::path TempDir::release() noexcept {
  fs::path p = std::move(path_);
  path_.clear();
  return p;
}

}  // namespace cbuild
