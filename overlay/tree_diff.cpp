#include "overlay/tree_diff.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <map>
#include <set>
#include <utility>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "overlay/layer_xattrs.h"
#include "overlay/override_stat.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::overlay {
namespace {

std::set<std::string> cleaned(const std::vector<std::string>& exclude) {
  std::set<std::string> out;
  for (auto p : exclude) {
    while (!p.empty() && p.front() == '/') p.erase(0, 1);
    while (!p.empty() && p.back() == '/') p.pop_back();
    if (!p.empty()) out.insert(p);
  }
  return out;
}

std::string join(const std::string& prefix, const std::string& name) { return prefix.empty() ? name : prefix + "/" + name; }

// Adds the birth time of directory dirfd/name (see TreeStat).
void add_btime(int dirfd, const std::string& name, TreeStat& t) {
  struct statx sx {};
  if (::statx(dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME)) {
    t.btime_sec = sx.stx_btime.tv_sec;
    t.btime_nsec = sx.stx_btime.tv_nsec;
  }
}

TreeStat to_tree_stat(const struct stat& st) {
  TreeStat t;
  t.mode = st.st_mode;
  t.uid = st.st_uid;
  t.gid = st.st_gid;
  t.size = st.st_size;
  t.mtime_sec = st.st_mtim.tv_sec;
  t.mtime_nsec = st.st_mtim.tv_nsec;
  t.ctime_sec = st.st_ctim.tv_sec;
  t.ctime_nsec = st.st_ctim.tv_nsec;
  t.dev = st.st_dev;
  t.rdev = st.st_rdev;
  t.ino = st.st_ino;
  return t;
}

bool same(const TreeStat& a, const TreeStat& b) {
  return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.size == b.size && a.mtime_sec == b.mtime_sec &&
         a.mtime_nsec == b.mtime_nsec && a.ctime_sec == b.ctime_sec && a.ctime_nsec == b.ctime_nsec && a.dev == b.dev &&
         a.rdev == b.rdev && a.ino == b.ino;
}

void record_dir(int dirfd, const std::string& prefix, const std::set<std::string>& exclude, TreeState& out) {
  check_cancelled();
  std::vector<std::string>& kids = out.children[prefix];
  for (auto& n : sys::list_dir(dirfd, prefix.empty() ? "/" : prefix)) {
    std::string path = join(prefix, n);
    if (exclude.count(path)) continue;
    struct stat st = sys::fstatat(dirfd, n, AT_SYMLINK_NOFOLLOW, path);
    kids.push_back(n);
    TreeStat& t = out.entries.emplace(path, to_tree_stat(st)).first->second;
    if (S_ISDIR(st.st_mode)) {
      add_btime(dirfd, n, t);
      UniqueFd sub = sys::openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, path);
      record_dir(sub.get(), path, exclude, out);
    }
  }
}

void copy_content(int in, int out, std::int64_t size, const std::string& shown) {
  std::int64_t left = size;
  while (left > 0) {
    check_cancelled();
    constexpr std::int64_t kPiece = 64 << 20;
    auto piece = static_cast<std::size_t>(std::min(left, kPiece));
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, piece, 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
      n = ::sendfile(out, in, nullptr, piece);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("copy", shown);
    }
    if (n == 0) throw Error(ErrorKind::DataLoss, "copy: " + quote(shown) + " shrank while it was copied");
    left -= n;
  }
}

// Makes dirfd/tmp a copy of dirfd/name (`st`, not a directory) with an inode of its own.
void copy_entry(int dirfd, const std::string& name, const std::string& tmp, const struct stat& st,
                const std::string& shown) {
  if (S_ISREG(st.st_mode)) {
    UniqueFd in = sys::openat(dirfd, name, O_RDONLY | O_NOFOLLOW, 0, shown);
    UniqueFd out = sys::openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600, shown);
    copy_content(in.get(), out.get(), st.st_size, shown);
  } else if (S_ISLNK(st.st_mode)) {
    sys::symlinkat(sys::readlinkat(dirfd, name, shown), dirfd, tmp, shown);
  } else {
    sys::mknodat(dirfd, tmp, (st.st_mode & S_IFMT) | 0600, st.st_rdev, shown);
  }
  sys::fchownat_nofollow(dirfd, tmp, st.st_uid, st.st_gid, shown);
  // After the owner: chown clears setuid/setgid bits and security.capability.
  if (!S_ISLNK(st.st_mode) && ::fchmodat(dirfd, tmp.c_str(), st.st_mode & 07777, 0) != 0) throw_errno("chmod", shown);
  for (const auto& key : sys::list_xattrs(dirfd, name, shown))
    if (auto v = sys::get_xattr(dirfd, name, key, shown)) sys::set_xattr(dirfd, tmp, key, *v, shown);
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(dirfd, tmp.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("set times", shown);
}

void separate_dir(int dirfd, const std::string& prefix, const std::set<std::string>& exclude,
                  std::set<std::pair<dev_t, ino_t>>& seen, std::uint64_t& count) {
  check_cancelled();
  const struct stat dir = sys::fstatat(dirfd, "", AT_EMPTY_PATH, prefix.empty() ? "/" : prefix);
  const std::uint64_t before = count;
  for (auto& n : sys::list_dir(dirfd, prefix.empty() ? "/" : prefix)) {
    std::string path = join(prefix, n);
    if (exclude.count(path)) continue;
    struct stat st = sys::fstatat(dirfd, n, AT_SYMLINK_NOFOLLOW, path);
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub = sys::openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, path);
      separate_dir(sub.get(), path, exclude, seen, count);
      continue;
    }
    if (st.st_nlink < 2 || seen.emplace(st.st_dev, st.st_ino).second) continue;
    // Made after list_dir read the directory: the walk never meets the copy.
    const std::string tmp = ".cbuild-unlink." + std::to_string(st.st_ino);
    try {
      copy_entry(dirfd, n, tmp, st, path);
      sys::renameat(dirfd, tmp, dirfd, n, path);
    } catch (...) {
      ::unlinkat(dirfd, tmp.c_str(), 0);
      throw;
    }
    ++count;
  }
  // A copy-up leaves the directory's times alone; so must this. A fresh mtime would also read
  // as the step's own change to the directory (restamped, emitted) when it lands in the tick
  // the step started in, and later layers would carry it where the directory is a parent.
  if (count != before) {
    const struct timespec ts[2] = {dir.st_atim, dir.st_mtim};
    if (::futimens(dirfd, ts) != 0) throw_errno("set times", prefix.empty() ? "/" : prefix);
  }
}

// An entry decided on during the walk, written once its directory's fate is known.
struct Pending {
  oci::TarEntry entry;   // complete
  oci::TarEntry linked;  // the same entry as a hardlink (base fields only)
  bool regular = false;
  bool may_link = false;  // a non-directory with several links
  dev_t dev = 0;
  ino_t ino = 0;
};

struct Walker {
  const TreeState& before;
  std::set<std::string> exclude;
  std::int64_t now_sec;
  std::uint32_t now_nsec;
  bool restore_setid = false;      // DiffOptions::restore_setid_writes
  std::vector<std::string> restored;

  // A set-id file the step wrote without CAP_FSETID lost its bits where a root build's write
  // keeps them: the record of it before the step reads as override_stat.h's would, and the
  // file on disk gets them back for the steps after this one.
  void restore_written_setid(int fd, const TreeStat& was, oci::TarEntry& e) {
    const OverrideStat o{.mode = was.mode,
                         .uid = e.uid,
                         .gid = e.gid,
                         .placeholder_mode = was.mode,
                         .placeholder_uid = e.uid,
                         .placeholder_gid = e.gid,
                         .mtime = FileTime{.sec = was.mtime_sec, .nsec = static_cast<std::uint32_t>(was.mtime_nsec)}};
    if (!restores_setid(e, o)) return;
    oci::TarEntry r = e;
    apply_override(r, o);
    if (::fchmod(fd, r.mode & 07777) < 0) throw_errno("chmod", e.path);
    e.mode = r.mode;
    restored.push_back(e.path);
  }

  // Adds the xattrs a layer may hold and reads the entry through a rootless placeholder's
  // override (override_stat.h), as the differ does.
  static void add_xattrs(int dirfd, const std::string& name, oci::TarEntry& e) {
    std::optional<OverrideStat> o;
    for (const auto& key : sys::list_xattrs(dirfd, name, e.path)) {
      auto v = sys::get_xattr(dirfd, name, key, e.path);
      if (!v) continue;
      if (key == kOverrideStatXattr) o = parse_override_stat_or_throw(*v, e.path);
      if (!layer_keeps_xattr(key)) continue;
      e.xattrs.emplace_back(key, std::move(*v));
    }
    if (o && (e.type == oci::TarType::File || e.type == oci::TarType::Dir)) apply_override(e, *o);
  }

  // What overlayfs leaves for a deletion: a 0/0 device owned by root, made now.
  oci::TarEntry whiteout(const std::string& path) const {
    oci::TarEntry device;
    device.mtime_sec = now_sec;
    device.mtime_nsec = now_nsec;
    return whiteout_marker(device, path);
  }

  // `fresh`: nothing below this directory existed before (it is new or replaced one).
  void walk_dir(int dirfd, const std::string& prefix, bool fresh, std::vector<Pending>& out) {
    check_cancelled();
    struct Item {
      std::string disk;
      bool deleted = false;
      struct stat st {};
    };
    std::vector<std::pair<std::string, Item>> items;  // (oci name, item)
    std::set<std::string> present;
    for (auto& n : sys::list_dir(dirfd, prefix.empty() ? "/" : prefix)) {
      std::string path = join(prefix, n);
      if (exclude.count(path)) continue;
      struct stat st = sys::fstatat(dirfd, n, AT_SYMLINK_NOFOLLOW, path);
      present.insert(n);
      if (S_ISSOCK(st.st_mode)) continue;
      items.push_back({n, Item{n, false, st}});
    }
    if (!fresh) {
      if (auto it = before.children.find(prefix); it != before.children.end())
        for (const auto& n : it->second)
          if (!present.count(n) && !exclude.count(join(prefix, n))) items.push_back({whiteout_entry_name(n), Item{n, true, {}}});
    }
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [oci_name, item] : items) {
      if (item.deleted) {
        Pending p;
        p.entry = whiteout(join(prefix, oci_name));
        out.push_back(std::move(p));
        continue;
      }
      const struct stat& st = item.st;
      std::string path = join(prefix, item.disk);
      const TreeStat* was = nullptr;
      if (!fresh)
        if (auto it = before.entries.find(path); it != before.entries.end()) was = &it->second;
      TreeStat now = to_tree_stat(st);
      if (S_ISDIR(st.st_mode)) {
        add_btime(dirfd, item.disk, now);
        bool replaced = was && (!S_ISDIR(was->mode) || was->ino != now.ino || was->dev != now.dev ||
                                was->btime_sec != now.btime_sec || was->btime_nsec != now.btime_nsec);
        bool changed = !was || replaced || !same(*was, now);
        UniqueFd sub = sys::openat(dirfd, item.disk, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, path);
        std::vector<Pending> below;
        walk_dir(sub.get(), path, fresh || !was || replaced, below);
        if (!changed && below.empty()) continue;
        Pending d;
        d.entry = oci::tar_entry_from_stat(path, st);
        d.entry.type = oci::TarType::Dir;
        add_xattrs(sub.get(), "", d.entry);
        Pending m;
        if (replaced) m.entry = opaque_marker(d.entry);
        out.push_back(std::move(d));
        if (replaced) out.push_back(std::move(m));
        for (auto& b : below) out.push_back(std::move(b));
        continue;
      }
      if (was && same(*was, now)) continue;
      Pending p;
      p.linked = oci::tar_entry_from_stat(path, st);
      p.linked.type = oci::TarType::Hardlink;
      p.may_link = st.st_nlink > 1;
      p.dev = st.st_dev;
      p.ino = st.st_ino;
      oci::TarEntry e = oci::tar_entry_from_stat(path, st);
      if (S_ISREG(st.st_mode)) {
        e.type = oci::TarType::File;
        e.size = st.st_size;
        UniqueFd fd = sys::openat(dirfd, item.disk, O_RDONLY | O_NOFOLLOW, 0, path);
        add_xattrs(fd.get(), "", e);
        if (restore_setid && was && S_ISREG(was->mode) && (was->mode & (S_ISUID | S_ISGID)) != 0)
          restore_written_setid(fd.get(), *was, e);
        p.regular = e.type == oci::TarType::File;
        p.linked.mode = e.mode;
        p.linked.uid = e.uid;
        p.linked.gid = e.gid;
      } else {
        add_xattrs(dirfd, item.disk, e);
        if (S_ISLNK(st.st_mode)) {
          e.type = oci::TarType::Symlink;
          e.link_target = sys::readlinkat(dirfd, item.disk, path);
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
          e.type = S_ISCHR(st.st_mode) ? oci::TarType::Char : oci::TarType::Block;
          e.dev_major = major(st.st_rdev);
          e.dev_minor = minor(st.st_rdev);
        } else if (S_ISFIFO(st.st_mode)) {
          e.type = oci::TarType::Fifo;
        } else {
          continue;
        }
      }
      p.entry = std::move(e);
      out.push_back(std::move(p));
    }
  }
};

}  // namespace

std::uint64_t separate_hard_links(const std::filesystem::path& root, const std::vector<std::string>& exclude) {
  UniqueFd fd = sys::openat(AT_FDCWD, root.string(), O_RDONLY | O_DIRECTORY, 0, root.string());
  std::set<std::pair<dev_t, ino_t>> seen;
  std::uint64_t count = 0;
  separate_dir(fd.get(), "", cleaned(exclude), seen, count);
  return count;
}

TreeState record_tree(const std::filesystem::path& root, const std::vector<std::string>& exclude) {
  UniqueFd fd = sys::openat(AT_FDCWD, root.string(), O_RDONLY | O_DIRECTORY, 0, root.string());
  TreeState out;
  record_dir(fd.get(), "", cleaned(exclude), out);
  return out;
}

std::uint64_t walk_tree_diff(const std::filesystem::path& root, const TreeState& before, const DiffOptions& options,
                             const DiffVisitor& visit) {
  UniqueFd rootfd = sys::openat(AT_FDCWD, root.string(), O_RDONLY | O_DIRECTORY, 0, root.string());
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  Walker w{before, cleaned(options.exclude), now.tv_sec, static_cast<std::uint32_t>(now.tv_nsec),
           options.restore_setid_writes, {}};
  std::vector<Pending> entries;
  w.walk_dir(rootfd.get(), "", false, entries);
  if (options.warn && !w.restored.empty())
    options.warn(setid_restored_warning(w.restored, "chroot isolation without CAP_FSETID", "the kernel"));
  // Hardlinks as the differ writes them: the first emitted path is the file, later ones link.
  std::map<std::pair<dev_t, ino_t>, std::string> links;
  std::uint64_t count = 0;
  for (auto& p : entries) {
    check_cancelled();
    if (p.may_link) {
      auto [it, inserted] = links.emplace(std::make_pair(p.dev, p.ino), p.entry.path);
      if (!inserted) {
        p.linked.link_target = it->second;
        visit(p.linked, -1);
        ++count;
        continue;
      }
    }
    if (p.regular) {
      UniqueFd fd = sys::openat(rootfd.get(), p.entry.path, O_RDONLY | O_NOFOLLOW, 0, p.entry.path);
      visit(p.entry, fd.get());
    } else {
      visit(p.entry, -1);
    }
    ++count;
  }
  return count;
}

}  // namespace cbuild::overlay
