#include "overlay/sys/syscalls.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "oci/base/error.h"

namespace cbuild::overlay::sys {
namespace {

template <class F>
long retry(F f) {
  long r;
  do r = f();
  while (r < 0 && errno == EINTR);
  return r;
}

std::string proc_path(int dirfd, const std::string& name) {
  if (dirfd == AT_FDCWD) return name;
  return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
}

}  // namespace

bool openat2_enabled() noexcept {
  static const bool enabled = [] {
    const char* off = std::getenv("CBUILD_NO_OPENAT2");
    if (off && *off && std::strcmp(off, "0") != 0) return false;
    int fd = try_openat2(AT_FDCWD, "/", O_PATH | O_DIRECTORY, 0, RESOLVE_IN_ROOT);
    if (fd < 0) return false;
    ::close(fd);
    return true;
  }();
  return enabled;
}

int try_openat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
                std::uint64_t resolve) noexcept {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  // The kernel rejects a mode without O_CREAT/O_TMPFILE.
  how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0;
  how.resolve = resolve;
  long r;
  // EAGAIN: a concurrent rename raced the RESOLVE_IN_ROOT walk; the kernel asks us to retry.
  int tries = 0;
  do r = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  while (r < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < 64)));
  return r < 0 ? -errno : static_cast<int>(r);
}

int try_openat(int dirfd, const char* path, int flags, mode_t mode) noexcept {
  long r = retry([&] { return ::openat(dirfd, path, flags | O_CLOEXEC, mode); });
  return r < 0 ? -errno : static_cast<int>(r);
}

UniqueFd openat(int dirfd, const std::string& path, int flags, mode_t mode, std::string_view shown) {
  int fd = try_openat(dirfd, path.c_str(), flags, mode);
  if (fd < 0) throw_errno("open", shown, -fd);
  return UniqueFd(fd);
}

struct stat fstatat(int dirfd, const std::string& name, int flags, std::string_view shown) {
  struct stat st {};
  if (retry([&] { return ::fstatat(dirfd, name.c_str(), &st, flags); }) < 0) throw_errno("stat", shown);
  return st;
}

std::optional<struct stat> try_lstatat(int dirfd, const std::string& name, std::string_view shown) {
  struct stat st {};
  if (retry([&] { return ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("stat", shown);
  }
  return st;
}

std::string readlinkat(int dirfd, const std::string& name, std::string_view shown) {
  std::string buf(256, '\0');
  for (;;) {
    long n = retry([&] { return ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size()); });
    if (n < 0) throw_errno("readlink", shown);
    if (static_cast<std::size_t>(n) < buf.size()) {
      buf.resize(n);
      return buf;
    }
    if (buf.size() >= 65536) throw Error(ErrorKind::InvalidArgument, "readlink " + quote(shown) + ": target too long");
    buf.resize(buf.size() * 4);
  }
}

void mkdirat(int dirfd, const std::string& name, mode_t mode, std::string_view shown) {
  if (retry([&] { return ::mkdirat(dirfd, name.c_str(), mode); }) < 0) throw_errno("mkdir", shown);
}

void mknodat(int dirfd, const std::string& name, mode_t mode, dev_t dev, std::string_view shown) {
  if (retry([&] { return ::mknodat(dirfd, name.c_str(), mode, dev); }) < 0) throw_errno("mknod", shown);
}

void symlinkat(const std::string& target, int dirfd, const std::string& name, std::string_view shown) {
  if (retry([&] { return ::symlinkat(target.c_str(), dirfd, name.c_str()); }) < 0) throw_errno("symlink", shown);
}

void linkat(int olddir, const std::string& oldname, int newdir, const std::string& newname,
            std::string_view shown) {
  if (retry([&] { return ::linkat(olddir, oldname.c_str(), newdir, newname.c_str(), 0); }) < 0)
    throw_errno("link", shown);
}

void unlinkat(int dirfd, const std::string& name, int flags, std::string_view shown) {
  if (retry([&] { return ::unlinkat(dirfd, name.c_str(), flags); }) < 0) throw_errno("unlink", shown);
}

void renameat(int olddir, const std::string& oldname, int newdir, const std::string& newname,
              std::string_view shown) {
  if (retry([&] { return ::renameat(olddir, oldname.c_str(), newdir, newname.c_str()); }) < 0)
    throw_errno("rename", shown);
}

void fchownat_nofollow(int dirfd, const std::string& name, uid_t uid, gid_t gid, std::string_view shown) {
  if (retry([&] { return ::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW); }) < 0)
    throw_errno("chown", shown);
}

void fchmod(int fd, mode_t mode, std::string_view shown) {
  if (retry([&] { return ::fchmod(fd, mode); }) < 0) throw_errno("chmod", shown);
}

void utimensat_nofollow(int dirfd, const std::string& name, std::int64_t sec, std::uint32_t nsec,
                        std::string_view shown) {
  timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = sec;
  ts[0].tv_nsec = ts[1].tv_nsec = nsec;
  if (retry([&] { return ::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW); }) < 0)
    throw_errno("utimens", shown);
}

void set_xattr(int dirfd, const std::string& name, const std::string& key, std::string_view value,
               std::string_view shown) {
  std::string p = proc_path(dirfd, name);
  if (retry([&] { return ::lsetxattr(p.c_str(), key.c_str(), value.data(), value.size(), 0); }) < 0)
    throw_errno("setxattr " + key, shown);
}

std::optional<std::string> get_xattr(int dirfd, const std::string& name, const std::string& key,
                                     std::string_view shown) {
  std::string p = proc_path(dirfd, name);
  std::string buf(256, '\0');
  for (;;) {
    long n = retry([&] {
      return name.empty() ? ::fgetxattr(dirfd, key.c_str(), buf.data(), buf.size())
                          : ::lgetxattr(p.c_str(), key.c_str(), buf.data(), buf.size());
    });
    if (n >= 0) {
      buf.resize(n);
      return buf;
    }
    if (errno == ENODATA || errno == ENOTSUP) return std::nullopt;
    if (errno != ERANGE) throw_errno("getxattr " + key, shown);
    long need = retry([&] {
      return name.empty() ? ::fgetxattr(dirfd, key.c_str(), nullptr, 0) : ::lgetxattr(p.c_str(), key.c_str(), nullptr, 0);
    });
    if (need < 0) throw_errno("getxattr " + key, shown);
    buf.resize(need + 1);
  }
}

std::vector<std::string> list_xattrs(int dirfd, const std::string& name, std::string_view shown) {
  std::string p = proc_path(dirfd, name);
  std::string buf(1024, '\0');
  long n;
  for (;;) {
    n = retry([&] {
      return name.empty() ? ::flistxattr(dirfd, buf.data(), buf.size()) : ::llistxattr(p.c_str(), buf.data(), buf.size());
    });
    if (n >= 0) break;
    if (errno == ENOTSUP) return {};
    if (errno != ERANGE) throw_errno("listxattr", shown);
    long need = retry([&] {
      return name.empty() ? ::flistxattr(dirfd, nullptr, 0) : ::llistxattr(p.c_str(), nullptr, 0);
    });
    if (need < 0) throw_errno("listxattr", shown);
    buf.resize(need + 1);
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < static_cast<std::size_t>(n);) {
    std::string k(buf.data() + i);
    i += k.size() + 1;
    if (!k.empty()) out.push_back(std::move(k));
  }
  std::sort(out.begin(), out.end());
  return out;
}

void remove_xattr(int dirfd, const std::string& name, const std::string& key, std::string_view shown) {
  std::string p = proc_path(dirfd, name);
  if (retry([&] { return ::lremovexattr(p.c_str(), key.c_str()); }) < 0 && errno != ENODATA)
    throw_errno("removexattr " + key, shown);
}

std::vector<std::string> list_dir(int dirfd, std::string_view shown) {
  int fd = try_openat(dirfd, ".", O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw_errno("opendir", shown, -fd);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    throw_errno("opendir", shown, e);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
  }
  int err = errno;
  ::closedir(d);
  if (err) throw_errno("readdir", shown, err);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {
void remove_all_rec(int dirfd, const std::string& name, dev_t dev, const std::string& shown) {
  auto st = try_lstatat(dirfd, name, shown);
  if (!st) return;
  if (!S_ISDIR(st->st_mode)) {
    unlinkat(dirfd, name, 0, shown);
    return;
  }
  if (st->st_dev != dev)
    throw Error(ErrorKind::FailedPrecondition, "remove " + quote(shown) + ": refusing to cross a mount point");
  UniqueFd sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, shown);
  for (const auto& n : list_dir(sub.get(), shown)) remove_all_rec(sub.get(), n, dev, shown + "/" + n);
  unlinkat(dirfd, name, AT_REMOVEDIR, shown);
}
}  // namespace

void remove_all_at(int dirfd, const std::string& name, std::string_view shown) {
  struct stat st {};
  if (::fstat(dirfd, &st) < 0) throw_errno("stat", shown);
  remove_all_rec(dirfd, name, st.st_dev, std::string(shown));
}

void mount(const char* source, const std::string& target, const char* fstype, unsigned long flags,
           const char* data) {
  if (retry([&] { return ::syscall(SYS_mount, source, target.c_str(), fstype, flags, data); }) < 0)
    throw_errno("mount", target);
}

void umount2(const std::string& target, int flags) {
  if (retry([&] { return ::syscall(SYS_umount2, target.c_str(), flags); }) < 0) throw_errno("umount", target);
}

void pivot_root(const char* new_root, const char* put_old) {
  if (retry([&] { return ::syscall(SYS_pivot_root, new_root, put_old); }) < 0) throw_errno("pivot_root", new_root);
}

UniqueFd fsopen(const char* fstype) {
  long fd = retry([&] { return ::syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC); });
  if (fd < 0) throw_errno("fsopen", fstype);
  return UniqueFd(static_cast<int>(fd));
}

void fsconfig_set(int fs_fd, const char* key, const char* value) {
  long r = value ? retry([&] { return ::syscall(SYS_fsconfig, fs_fd, FSCONFIG_SET_STRING, key, value, 0); })
                 : retry([&] { return ::syscall(SYS_fsconfig, fs_fd, FSCONFIG_SET_FLAG, key, nullptr, 0); });
  if (r < 0) throw_errno(std::string("fsconfig ") + key, value ? value : "");
}

void fsconfig_create(int fs_fd, std::string_view shown) {
  if (retry([&] { return ::syscall(SYS_fsconfig, fs_fd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0); }) >= 0) return;
  int err = errno;
  // The filesystem explains itself through the context fd ("e overlayfs: …" lines).
  std::string log;
  char buf[512];
  long n;
  while ((n = ::read(fs_fd, buf, sizeof buf - 1)) > 0) {
    buf[n] = 0;
    if (!log.empty()) log += "; ";
    log.append(buf, n > 0 && buf[n - 1] == '\n' ? n - 1 : n);
  }
  Error e(kind_from_errno(err), "mount " + quote(shown) + ": " + std::strerror(err) +
                                    (log.empty() ? "" : " (" + log + ")"), err);
  throw e;
}

UniqueFd fsmount(int fs_fd, unsigned int attr_flags) {
  long fd = retry([&] { return ::syscall(SYS_fsmount, fs_fd, FSMOUNT_CLOEXEC, attr_flags); });
  if (fd < 0) throw_errno("fsmount", "");
  return UniqueFd(static_cast<int>(fd));
}

void move_mount_to(int mnt_fd, const std::string& target) {
  if (retry([&] { return ::syscall(SYS_move_mount, mnt_fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH); }) < 0)
    throw_errno("move_mount", target);
}

UniqueFd open_tree_clone(int fd, std::string_view shown) {
  long t = retry([&] {
    return ::syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
  });
  if (t < 0) throw_errno("open_tree", shown);
  return UniqueFd(static_cast<int>(t));
}

}  // namespace cbuild::overlay::sys
