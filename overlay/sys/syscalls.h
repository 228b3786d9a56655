// overlay/sys — the one thin layer over the system calls the overlay module needs.
//
// Every wrapper retries on EINTR and, on failure, throws cbuild::Error carrying errno and a
// message naming the call and the quoted path ("mount \"/x\": Operation not permitted").
// The try_* variants return -errno instead of throwing, for callers where a failure is a
// normal answer (e.g. probing whether openat2 exists). Raw int fds appear only here; the
// wrappers that create an fd return a UniqueFd.
//
// Newer calls (openat2, fsopen/fsconfig/fsmount/move_mount, pivot_root) go through syscall(2)
// because Debian 12's glibc lacks some of them. openat2 can be disabled for tests with the
// environment variable CBUILD_NO_OPENAT2=1 (read once per process), so the fallback path of
// safe_path.h runs in CI too. All functions are thread-safe (they keep no state besides that
// flag) and async-signal-safe only where stated.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/base/unique_fd.h"

namespace cbuild::overlay::sys {

// True when openat2 may be used: the kernel has it and CBUILD_NO_OPENAT2 is not set.
bool openat2_enabled() noexcept;

// openat2(dirfd, path, {flags|O_CLOEXEC, mode, resolve}); returns the fd or -errno.
int try_openat2(int dirfd, const char* path, std::uint64_t flags, std::uint64_t mode,
                std::uint64_t resolve) noexcept;

// openat with O_CLOEXEC; returns the fd or -errno.
int try_openat(int dirfd, const char* path, int flags, mode_t mode = 0) noexcept;
UniqueFd openat(int dirfd, const std::string& path, int flags, mode_t mode, std::string_view shown);

struct stat fstatat(int dirfd, const std::string& name, int flags, std::string_view shown);
// nullopt when the name does not exist (ENOENT); throws on other errors.
std::optional<struct stat> try_lstatat(int dirfd, const std::string& name, std::string_view shown);
std::string readlinkat(int dirfd, const std::string& name, std::string_view shown);

void mkdirat(int dirfd, const std::string& name, mode_t mode, std::string_view shown);
void mknodat(int dirfd, const std::string& name, mode_t mode, dev_t dev, std::string_view shown);
void symlinkat(const std::string& target, int dirfd, const std::string& name, std::string_view shown);
void linkat(int olddir, const std::string& oldname, int newdir, const std::string& newname,
            std::string_view shown);
void unlinkat(int dirfd, const std::string& name, int flags, std::string_view shown);
void renameat(int olddir, const std::string& oldname, int newdir, const std::string& newname,
              std::string_view shown);
// lchown-style (AT_SYMLINK_NOFOLLOW) owner change of dirfd/name.
void fchownat_nofollow(int dirfd, const std::string& name, uid_t uid, gid_t gid, std::string_view shown);
void fchmod(int fd, mode_t mode, std::string_view shown);
// Sets atime and mtime of dirfd/name without following a symlink leaf.
void utimensat_nofollow(int dirfd, const std::string& name, std::int64_t sec, std::uint32_t nsec,
                        std::string_view shown);

// Extended attributes on dirfd/name, never following a symlink leaf (addressed through
// /proc/self/fd/<dirfd>/<name>, so a single-component name cannot escape the directory;
// with AT_FDCWD, `name` is used as given). get_xattr/list_xattrs with an empty `name` read the
// xattrs of the open (non-O_PATH) fd `dirfd` itself — no path lookup, the fast path for walks.
void set_xattr(int dirfd, const std::string& name, const std::string& key, std::string_view value,
               std::string_view shown);
std::optional<std::string> get_xattr(int dirfd, const std::string& name, const std::string& key,
                                     std::string_view shown);
std::vector<std::string> list_xattrs(int dirfd, const std::string& name, std::string_view shown);
void remove_xattr(int dirfd, const std::string& name, const std::string& key, std::string_view shown);

// Names in a directory (without "." and ".."), sorted by bytes. Reads through a dup of dirfd.
std::vector<std::string> list_dir(int dirfd, std::string_view shown);
// Recursively removes dirfd/name without following symlinks or crossing mount points.
// Missing is fine.
void remove_all_at(int dirfd, const std::string& name, std::string_view shown);

// mount(2) and umount2(2).
void mount(const char* source, const std::string& target, const char* fstype, unsigned long flags,
           const char* data);
void umount2(const std::string& target, int flags);
void pivot_root(const char* new_root, const char* put_old);

// The new mount API (fsopen → fsconfig… → fsmount → move_mount).
UniqueFd fsopen(const char* fstype);
// fsconfig(FSCONFIG_SET_STRING, key, value) / FSCONFIG_SET_FLAG when value is null.
void fsconfig_set(int fs_fd, const char* key, const char* value);
// fsconfig(FSCONFIG_CMD_CREATE); on failure the kernel's log messages are read from fs_fd
// and added to the error message.
void fsconfig_create(int fs_fd, std::string_view shown);
UniqueFd fsmount(int fs_fd, unsigned int attr_flags);
void move_mount_to(int mnt_fd, const std::string& target);
// open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE): a detached copy of the mount tree at
// `fd` (any fd, O_PATH included), which move_mount can attach in another mount namespace —
// unlike a "/proc/self/fd/N" path, whose mount belongs to the namespace that opened it.
UniqueFd open_tree_clone(int fd, std::string_view shown);

}  // namespace cbuild::overlay::sys
