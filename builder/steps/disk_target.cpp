#include "builder/steps/disk_target.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "overlay/layer_xattrs.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::builder {

namespace {

void copy_content(int in, int out, std::int64_t size, const std::string& shown) {
  // Pieces of 64 MiB keep a cancel check between kernel copies of a huge file.
  constexpr std::int64_t kPiece = 64 << 20;
  std::int64_t left = size;
  while (left > 0) {
    check_cancelled();
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<std::size_t>(std::min(left, kPiece)), 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
      n = ::sendfile(out, in, nullptr, static_cast<std::size_t>(std::min(left, kPiece)));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("copy", shown);
    }
    if (n == 0) throw Error(ErrorKind::DataLoss, "copy: " + quote(shown) + " shrank while it was copied");
    left -= n;
  }
}

}  // namespace

overlay::ParentAndLeaf& DiskTarget::parent(const std::string& path) {
  if (!parent_ || parent_->path != overlay::clean_path(path))
    parent_ = overlay::open_parent_in_root(dest_, path, /*create_parents=*/true);
  return *parent_;
}

CopyTarget::Entry DiskTarget::at(const std::string& path) {
  overlay::ParentAndLeaf& pl = parent(path);
  struct stat st {};
  if (::fstatat(pl.dir.get(), pl.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) throw_errno("stat", path);
    return {};
  }
  return {.exists = true, .type = st.st_mode & S_IFMT};
}

bool DiskTarget::is_dir(const std::string& path) {
  try {
    UniqueFd d = overlay::open_in_root(dest_, path, O_RDONLY | O_DIRECTORY);
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string DiskTarget::resolve(const std::string& path) { return overlay::resolve_in_root(dest_, path); }

void DiskTarget::land(const Landing& l) {
  if (l.op == Landing::Op::DirTime) {
    auto pl = overlay::open_parent_in_root(dest_, l.path, /*create_parents=*/false);
    struct timespec ts[2] = {l.mtime, l.mtime};
    ::utimensat(pl.dir.get(), pl.leaf.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    return;
  }
  overlay::ParentAndLeaf& pl = parent(l.path);
  const int dfd = pl.dir.get();
  const char* leaf = pl.leaf.c_str();
  auto chown = [&] {
    if (::fchownat(dfd, leaf, l.uid, l.gid, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", l.path);
  };
  auto chmod = [&] {
    if (::fchmodat(dfd, leaf, l.mode, 0) != 0) throw_errno("chmod", l.path);
  };
  if (l.replace && ::unlinkat(dfd, leaf, 0) != 0) throw_errno("replace", l.path);
  switch (l.op) {
    case Landing::Op::Mkdir:
      if (::mkdirat(dfd, leaf, l.mode) != 0 && errno != EEXIST) throw_errno("mkdir", l.path);
      chown();
      return;
    case Landing::Op::ChownLink: chown(); return;
    case Landing::Op::ChmodDir: chmod(); return;
    case Landing::Op::IntoDir:
    case Landing::Op::Dir:
      // Made 0700 and opened up after the owner change: never briefly open to others.
      if (!l.exists && ::mkdirat(dfd, leaf, 0700) != 0) throw_errno("mkdir", l.path);
      chown();
      chmod();
      return;
    case Landing::Op::Symlink: {
      if (::symlinkat(l.item->link_target.c_str(), dfd, leaf) != 0) throw_errno("symlink", l.path);
      chown();
      struct timespec ts[2] = {l.mtime, l.mtime};
      ::utimensat(dfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
      return;
    }
    case Landing::Op::Hardlink: {
      auto first = overlay::open_parent_in_root(dest_, l.item->link_to, false);
      if (::linkat(first.dir.get(), first.leaf.c_str(), dfd, leaf, 0) != 0) throw_errno("link", l.path);
      return;
    }
    case Landing::Op::File: {
      UniqueFd in = overlay::open_in_root(l.src_root, l.item->src, O_RDONLY | O_NOFOLLOW);
      int ofd = ::openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (ofd < 0) throw_errno("create", l.path);
      UniqueFd out(ofd);
      copy_content(in.get(), out.get(), l.item->st.st_size, l.item->src);
      if (::fchown(out.get(), l.uid, l.gid) != 0) throw_errno("chown", l.path);
      // chmod after chown: chown clears setuid/setgid bits.
      if (::fchmod(out.get(), l.mode) != 0) throw_errno("chmod", l.path);
      // After chown, which clears it.
      if (l.capability)
        if (auto cap = overlay::sys::get_xattr(in.get(), "", std::string(overlay::kCapabilityXattr), l.item->src))
          if (::fsetxattr(out.get(), overlay::kCapabilityXattr.data(), cap->data(), cap->size(), 0) != 0)
            throw_errno("set security.capability", l.path);
      struct timespec ts[2] = {l.mtime, l.mtime};
      if (::futimens(out.get(), ts) != 0) throw_errno("set times", l.path);
      return;
    }
    case Landing::Op::EmptyFile: {
      int ofd = ::openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (ofd < 0) throw_errno("create", l.path);
      UniqueFd out(ofd);
      if (::fchown(out.get(), l.uid, l.gid) != 0) throw_errno("chown", l.path);
      if (::fchmod(out.get(), l.mode) != 0) throw_errno("chmod", l.path);
      struct timespec ts[2] = {l.mtime, l.mtime};
      if (::futimens(out.get(), ts) != 0) throw_errno("set times", l.path);
      return;
    }
    case Landing::Op::Remove: return;
    case Landing::Op::DirTime: return;
  }
}

}  // namespace cbuild::builder
