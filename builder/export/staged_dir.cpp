#include "builder/export/staged_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "oci/base/error.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

// "out/", "." and "a/../b" become a path whose filename() is the directory's own name.
fs::path normalized(const fs::path& p) {
  fs::path n = fs::absolute(p).lexically_normal();
  if (!n.has_filename() && n.has_parent_path() && n != n.root_path()) n = n.parent_path();
  return n;
}

// Moves every entry of `src` into `dst` (see the header for the rules). Both are directory fds;
// nothing in `dst` is resolved through a symlink, since every lookup is one name relative to
// an fd opened with O_NOFOLLOW.
void merge_into(int src, int dst, const std::string& shown) {
  for (const std::string& name : overlay::sys::list_dir(src, shown)) {
    std::string here = shown + "/" + name;
    struct stat s {}, d {};
    if (::fstatat(src, name.c_str(), &s, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("stat", here);
    bool exists = ::fstatat(dst, name.c_str(), &d, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) throw_errno("stat", here);
    if (exists && S_ISDIR(s.st_mode) && S_ISDIR(d.st_mode)) {
      UniqueFd sfd = open_at(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      UniqueFd dfd = open_at(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      merge_into(sfd.get(), dfd.get(), here);
      // Owner before mode (chown clears set-id bits); times last, after the moves above
      // changed the directory's mtime.
      if (::geteuid() == 0 && ::fchown(dfd.get(), s.st_uid, s.st_gid) != 0) throw_errno("chown", here);
      if (::fchmod(dfd.get(), s.st_mode & 07777) != 0) throw_errno("chmod", here);
      const struct timespec times[2] = {s.st_atim, s.st_mtim};
      if (::futimens(dfd.get(), times) != 0) throw_errno("set times of", here);
      if (::unlinkat(src, name.c_str(), AT_REMOVEDIR) != 0) throw_errno("rmdir", here);
      continue;
    }
    // rename(2) replaces a non-directory atomically; a directory on either side must go first.
    if (exists && (S_ISDIR(s.st_mode) || S_ISDIR(d.st_mode))) {
      if (S_ISDIR(d.st_mode))
        remove_tree(fs::path("/proc/self/fd") / std::to_string(dst) / name);
      else if (::unlinkat(dst, name.c_str(), 0) != 0)
        throw_errno("remove", here);
    }
    if (::renameat(src, name.c_str(), dst, name.c_str()) != 0) throw_errno("move into place", here);
  }
}

}  // namespace

StagedDir::StagedDir(const fs::path& dest) : dest_(normalized(dest)) {
  struct stat st {};
  if (::stat(dest_.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw Error(ErrorKind::FailedPrecondition, quote(dest.string()) + " exists and is not a directory");
    merge_ = true;
  } else {
    if (errno != ENOENT) throw_errno("stat", dest.string());
    make_dirs(dest_.parent_path());
  }
  try {
    if (merge_) staging_.emplace(dest_, ".cbuild-export-");
    else staging_.emplace(dest_.parent_path(), "." + dest_.filename().string() + ".cbuild-tmp-");
  } catch (const Error& e) {
    // The staging name is an implementation detail: name what the user asked for.
    if (!e.sys_errno()) throw;
    throw_errno(merge_ ? "write into" : "create", dest.string(), e.sys_errno());
  }
  if (::chmod(staging_->path().c_str(), 0755) != 0) throw_errno("chmod", staging_->path().string());
}

void StagedDir::commit() {
  if (!merge_) {
    if (::rename(staging_->path().c_str(), dest_.c_str()) != 0) throw_errno("rename into place", dest_.string());
    // The directory now lives on as dest_: the staging owner must not remove it. Its
    // returned path is the staging name, which no longer exists.
    staging_->release();
    return;
  }
  UniqueFd src = open_file(staging_->path(), O_RDONLY | O_DIRECTORY);
  UniqueFd dst = open_file(dest_, O_RDONLY | O_DIRECTORY);
  merge_into(src.get(), dst.get(), dest_.string());
}

}  // namespace cbuild::builder
