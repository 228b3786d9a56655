#include "overlay/applier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "oci/base/cancel.h"
#include "oci/base/fs.h"
#include "oci/base/error.h"
#include "overlay/override_stat.h"
#include "overlay/safe_path.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::overlay {
namespace {

// True when the raw hardlink target climbs above the layer root ("../x", "a/../../x").
bool climbs_out(std::string_view p) {
  int depth = 0;
  std::size_t i = 0;
  while (i <= p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view c = p.substr(i, j - i);
    if (c == "..") {
      if (--depth < 0) return true;
    } else if (!c.empty() && c != ".") {
      ++depth;
    }
    i = j + 1;
  }
  return false;
}

mode_t file_type_bits(oci::TarType t) {
  switch (t) {
    case oci::TarType::Char: return S_IFCHR;
    case oci::TarType::Block: return S_IFBLK;
    case oci::TarType::Fifo: return S_IFIFO;
    default: return S_IFREG;
  }
}

std::string entry_msg(const oci::TarEntry& e) { return "layer entry " + quote(e.path); }

// Runs `op`; when it fails because of what a user namespace forbids (a rootless build), the
// error says that instead of a bare EPERM/EINVAL — the layer cannot be what root would write.
template <class F>
void rootless_aware(std::string_view operation, const std::string& shown, const oci::TarEntry& e, F&& op) {
  try {
    op();
  } catch (const Error& err) {
    if (auto msg = rootless_limit_message(operation, err.sys_errno(), shown, e.uid, e.gid))
      throw Error(ErrorKind::FailedPrecondition, entry_msg(e) + ": " + *msg, err.sys_errno());
    throw;
  }
}

}  // namespace

Applier::Applier(const std::filesystem::path& root, ApplyOptions options)
    : root_path_(root), options_(options) {
  root_ = sys::openat(AT_FDCWD, root.string(), O_PATH | O_DIRECTORY, 0, root.string());
}

void Applier::apply(const oci::TarEntry& e, oci::ByteSource* data) {
  ++stats_.entries;
  for (const auto& [key, value] : e.xattrs)
    if (is_reserved_xattr(key))
      throw Error(ErrorKind::InvalidArgument, entry_msg(e) + " carries the attribute " + quote(key) +
                                                  ", which is reserved for cbuild's rootless snapshots (it would "
                                                  "change how the entry is read)");
  std::string cleaned = clean_path(e.path);
  if (cleaned.empty()) {
    if (e.type == oci::TarType::Dir) return;  // "./" or "a/..": the root keeps its metadata
    throw Error(ErrorKind::InvalidArgument, entry_msg(e) + " would replace the root directory");
  }
  std::size_t slash = cleaned.rfind('/');
  std::string dir = slash == std::string::npos ? "" : cleaned.substr(0, slash);
  std::string base = slash == std::string::npos ? cleaned : cleaned.substr(slash + 1);
  if (classify_whiteout(base) != WhiteoutName::None) {
    apply_whiteout(dir, base);
    return;
  }

  if (!cached_fd_ || cached_dir_ != dir) {
    cached_fd_ = mkdir_in_root(root_.get(), dir);
    cached_dir_ = dir;
  }
  UniqueFd parent = std::move(cached_fd_);
  const std::string& shown = cleaned;
  auto existing = sys::try_lstatat(parent.get(), base, shown);
  bool reuse_parent = e.type != oci::TarType::Symlink;
  if (existing) {
    bool keep = e.type == oci::TarType::Dir && S_ISDIR(existing->st_mode);
    if (!keep) {
      sys::remove_all_at(parent.get(), base, shown);
      reuse_parent = false;
    }
  }
  // Hands the parent back to the cache on every way out of this function (incl. the early
  // return for hardlinks), unless something was removed.
  struct Recache {
    Applier& a;
    UniqueFd& fd;
    bool& reuse;
    ~Recache() {
      if (reuse) a.cached_fd_ = std::move(fd);
    }
  } recache{*this, parent, reuse_parent};
  bool placeholder = false;  // a regular file stands for a node the namespace cannot make

  switch (e.type) {
    case oci::TarType::Dir:
      if (!existing || !S_ISDIR(existing->st_mode)) sys::mkdirat(parent.get(), base, 0700, shown);
      break;
    case oci::TarType::File:
      write_file(parent.get(), base, e, data, shown);
      break;
    case oci::TarType::Symlink:
      // The target is stored verbatim: it is only ever followed inside a root.
      sys::symlinkat(e.link_target, parent.get(), base, shown);
      break;
    case oci::TarType::Hardlink: {
      if (e.link_target.empty() || climbs_out(e.link_target))
        throw Error(ErrorKind::InvalidArgument,
                    entry_msg(e) + " is a hardlink to " + quote(e.link_target) + ", outside the layer");
      std::string target = clean_path(e.link_target);
      if (target.empty())
        throw Error(ErrorKind::InvalidArgument, entry_msg(e) + " is a hardlink to the root directory");
      ParentAndLeaf t = [&] {
        try {
          return open_parent_in_root(root_.get(), target, false);
        } catch (const Error& err) {
          throw Error(ErrorKind::InvalidArgument,
                      entry_msg(e) + " is a hardlink to missing " + quote(e.link_target), err.sys_errno());
        }
      }();
      auto tst = sys::try_lstatat(t.dir.get(), t.leaf, target);
      if (!tst || S_ISDIR(tst->st_mode))
        throw Error(ErrorKind::InvalidArgument,
                    entry_msg(e) + " is a hardlink to " + (tst ? "directory " : "missing ") + quote(e.link_target));
      // linkat without AT_SYMLINK_FOLLOW links a symlink itself, never what it points to.
      sys::linkat(t.dir.get(), t.leaf, parent.get(), base, shown);
      written_.insert(cleaned);
      return;  // a hardlink shares the target's metadata
    }
    case oci::TarType::Char:
    case oci::TarType::Block:
    case oci::TarType::Fifo:
      try {
        sys::mknodat(parent.get(), base, file_type_bits(e.type) | 0600, makedev(e.dev_major, e.dev_minor), shown);
      } catch (const Error& err) {
        // A user namespace makes no device nodes: a placeholder stands for it (override_stat.h).
        if (err.sys_errno() != EPERM || overlay_xattr_namespace() != XattrNamespace::User) throw;
        if (!options_.placeholders)
          throw Error(ErrorKind::FailedPrecondition,
                      entry_msg(e) + ": " + rootless_limit_message("mknod", EPERM, shown).value_or("mknod"), EPERM);
        UniqueFd made = sys::openat(parent.get(), base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600, shown);
        placeholder = true;
      }
      break;
  }
  written_.insert(cleaned);
  set_metadata(parent.get(), base, e, shown, placeholder, existing && e.type == oci::TarType::Dir && S_ISDIR(existing->st_mode));
}

void Applier::write_file(int dirfd, const std::string& leaf, const oci::TarEntry& e, oci::ByteSource* data,
                         const std::string& shown) {
  UniqueFd fd = sys::openat(dirfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600, shown);
  std::int64_t left = e.size;
  if (left > 0 && !data) throw Error(ErrorKind::InvalidArgument, entry_msg(e) + " has no data");
  std::vector<std::byte> buf(static_cast<std::size_t>(std::min<std::int64_t>(left, 1 << 20)));
  while (left > 0) {
    std::size_t want = static_cast<std::size_t>(std::min<std::int64_t>(left, static_cast<std::int64_t>(buf.size())));
    std::size_t n = data->read(std::span<std::byte>(buf.data(), want));
    if (n == 0) throw Error(ErrorKind::DataLoss, entry_msg(e) + " is truncated");
    write_all(fd.get(), buf.data(), n, shown);
    left -= static_cast<std::int64_t>(n);
    stats_.bytes += n;
  }
}

void Applier::set_metadata(int dirfd, const std::string& leaf, const oci::TarEntry& e, const std::string& shown,
                           bool placeholder, bool kept_dir) {
  bool unmapped = false;
  // chown first: it clears setuid/setgid, which the chmod then restores.
  if (options_.same_owner) {
    try {
      sys::fchownat_nofollow(dirfd, leaf, e.uid, e.gid, shown);
    } catch (const Error& err) {
      if (err.sys_errno() != EINVAL || overlay_xattr_namespace() != XattrNamespace::User) throw;
      // An owner outside the mapping: the nearest mapped one stands for it, and the real one
      // is recorded (override_stat.h) — except on a symlink, which cannot carry user.* xattrs.
      if (e.type == oci::TarType::Symlink || !options_.placeholders) {
        auto msg = rootless_limit_message("chown", EINVAL, shown, e.uid, e.gid);
        throw Error(ErrorKind::FailedPrecondition,
                    entry_msg(e) + ": " + msg.value_or("owner outside the mapping") +
                        (options_.placeholders ? " (a symlink cannot carry the attribute that would record it)" : ""),
                    EINVAL);
      }
      if (e.type == oci::TarType::Fifo && !placeholder) {
        sys::remove_all_at(dirfd, leaf, shown);
        UniqueFd made = sys::openat(dirfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600, shown);
        placeholder = true;
      }
      sys::fchownat_nofollow(dirfd, leaf, nearest_mapped_id(e.uid, false), nearest_mapped_id(e.gid, true), shown);
      unmapped = true;
    }
  }
  if (e.type != oci::TarType::Symlink) {
    // The leaf was just created by us and is not a symlink, so following it is harmless.
    if (::fchmodat(dirfd, leaf.c_str(), e.mode & 07777, 0) < 0) throw_errno("chmod", shown);
  }
  for (const auto& [key, value] : e.xattrs) {
    if (is_overlay_private_xattr(key)) continue;
    rootless_aware("setxattr", shown, e, [&] { sys::set_xattr(dirfd, leaf, key, value, shown); });
  }
  // Rootless, a RUN that writes into a set-id file loses the bits; the record lets the layer
  // keep them (override_stat.h). Recorded after the mtime is set: its mtime is part of it.
  bool setid = e.type == oci::TarType::File && (e.mode & (S_ISUID | S_ISGID)) != 0 &&
               options_.mode == ApplyMode::Overlay && options_.placeholders &&
               overlay_xattr_namespace() == XattrNamespace::User;
  if (e.type != oci::TarType::Dir) sys::utimensat_nofollow(dirfd, leaf, e.mtime_sec, e.mtime_nsec, shown);
  if (placeholder || unmapped || setid) {
    struct stat now = sys::fstatat(dirfd, leaf, AT_SYMLINK_NOFOLLOW, shown);
    OverrideStat o{.mode = file_type_bits(e.type) | (e.mode & 07777),
                   .uid = e.uid,
                   .gid = e.gid,
                   .dev_major = placeholder && e.type != oci::TarType::Fifo ? e.dev_major : 0,
                   .dev_minor = placeholder && e.type != oci::TarType::Fifo ? e.dev_minor : 0,
                   .placeholder_mode = now.st_mode,
                   .placeholder_uid = now.st_uid,
                   .placeholder_gid = now.st_gid};
    if (e.type == oci::TarType::Dir) o.mode = S_IFDIR | (e.mode & 07777);
    if (setid) o.mtime = FileTime{.sec = now.st_mtim.tv_sec, .nsec = static_cast<std::uint32_t>(now.st_mtim.tv_nsec)};
    sys::set_xattr(dirfd, leaf, std::string(kOverrideStatXattr), format_override_stat(o), shown);
  } else if (kept_dir) {
    // An earlier layer's placeholder directory that this layer gives an owner it can have.
    sys::remove_xattr(dirfd, leaf, std::string(kOverrideStatXattr), shown);
  }
  if (e.type == oci::TarType::Dir) dir_times_.push_back({shown, e.mtime_sec, e.mtime_nsec});
}

void Applier::apply_whiteout(const std::string& dir, const std::string& base) {
  cached_fd_.reset();  // a whiteout removes things
  WhiteoutName kind = classify_whiteout(base);
  if (kind == WhiteoutName::Meta) return;
  UniqueFd parent = mkdir_in_root(root_.get(), dir);
  if (kind == WhiteoutName::Opaque) {
    if (options_.mode == ApplyMode::Overlay) {
      make_overlay_opaque(parent.get(), ".", options_.xattr_namespace, dir.empty() ? "/" : dir);
      return;
    }
    // Flatten: hide what earlier layers put here; keep what this layer already wrote.
    for (const auto& name : sys::list_dir(parent.get(), dir)) {
      std::string child = dir.empty() ? name : dir + "/" + name;
      if (!written_.count(child)) sys::remove_all_at(parent.get(), name, child);
    }
    return;
  }
  std::string target = whiteout_target(base);
  if (target == "." || target == "..") return;  // deletes nothing nameable
  std::string shown = dir.empty() ? target : dir + "/" + target;
  sys::remove_all_at(parent.get(), target, shown);
  if (options_.mode == ApplyMode::Overlay) make_overlay_whiteout(parent.get(), target, shown);
}

void Applier::finish() {
  // Deepest first, so setting a child's time never disturbs an already-set parent.
  std::sort(dir_times_.begin(), dir_times_.end(),
            [](const DirTime& a, const DirTime& b) { return a.path.size() > b.path.size(); });
  for (const auto& d : dir_times_) {
    try {
      ParentAndLeaf pl = open_parent_in_root(root_.get(), d.path, false);
      sys::utimensat_nofollow(pl.dir.get(), pl.leaf, d.sec, d.nsec, d.path);
    } catch (const Error& e) {
      if (e.sys_errno() != ENOENT) throw;  // removed by a later whiteout: nothing to date
    }
  }
  dir_times_.clear();
}

ApplyStats apply_layer(oci::TarReader& reader, const std::filesystem::path& root, ApplyOptions options) {
  Applier applier(root, options);
  while (auto e = reader.next()) {
    check_cancelled();
    applier.apply(*e, e->type == oci::TarType::File ? &reader.data() : nullptr);
  }
  applier.finish();
  return applier.stats();
}

}  // namespace cbuild::overlay
