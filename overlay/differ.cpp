#include "overlay/differ.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
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

struct Walker {
  const DiffOptions& options;
  const DiffVisitor& visit;
  std::set<std::string> exclude;
  std::map<std::pair<dev_t, ino_t>, std::string> links;
  std::uint64_t count = 0;
  std::vector<std::string> stand_in_owners;  // changed placeholders still owned by the stand-in
  std::vector<std::string> setid_restored;   // written set-id files given their bits back

  void read_through(oci::TarEntry& e, const OverrideStat& o) {
    bool uid_kept = o.uid != o.placeholder_uid && e.uid == o.placeholder_uid;
    bool gid_kept = o.gid != o.placeholder_gid && e.gid == o.placeholder_gid;
    if (uid_kept || gid_kept) stand_in_owners.push_back(e.path);
    if (restores_setid(e, o)) setid_restored.push_back(e.path);
    apply_override(e, o);
  }


  // Adds the xattrs a layer may hold; returns the override a rootless placeholder carries.
  std::optional<OverrideStat> add_xattrs(int dirfd, const std::string& name, oci::TarEntry& e) {
    std::optional<OverrideStat> o;
    for (const auto& key : sys::list_xattrs(dirfd, name, e.path)) {
      auto v = sys::get_xattr(dirfd, name, key, e.path);
      if (!v) continue;
      if (key == kOverrideStatXattr) o = parse_override_stat_or_throw(*v, e.path);
      if (!layer_keeps_xattr(key)) continue;
      e.xattrs.emplace_back(key, std::move(*v));
    }
    return o;
  }

  void emit(const oci::TarEntry& e, int fd) {
    visit(e, fd);
    ++count;
  }

  void walk_dir(int dirfd, const std::string& prefix) {
    check_cancelled();
    // Sort by the name the entry will have in the layer.
    std::vector<std::pair<std::string, std::string>> names;  // (oci name, disk name)
    std::map<std::string, struct stat> stats;
    for (auto& n : sys::list_dir(dirfd, prefix.empty() ? "/" : prefix)) {
      std::string path = prefix.empty() ? n : prefix + "/" + n;
      if (exclude.count(path)) continue;
      struct stat st = sys::fstatat(dirfd, n, AT_SYMLINK_NOFOLLOW, path);
      if (S_ISSOCK(st.st_mode)) continue;
      names.emplace_back(is_overlay_whiteout(st) ? whiteout_entry_name(n) : n, n);
      stats.emplace(n, st);
    }
    std::sort(names.begin(), names.end());
    for (const auto& [oci_name, disk] : names) {
      const struct stat& st = stats.at(disk);
      std::string path = prefix.empty() ? disk : prefix + "/" + disk;
      if (is_overlay_whiteout(st)) {
        emit(whiteout_marker(oci::tar_entry_from_stat(path, st), prefix.empty() ? oci_name : prefix + "/" + oci_name), -1);
        continue;
      }
      oci::TarEntry e = oci::tar_entry_from_stat(path, st);
      if (S_ISDIR(st.st_mode)) {
        e.type = oci::TarType::Dir;
        // Read the xattrs through the directory's own fd: a path lookup per entry through
        // /proc/self/fd costs more than the rest of the walk.
        UniqueFd sub = sys::openat(dirfd, disk, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, path);
        bool opaque = is_overlay_opaque(sub.get(), "", options.xattr_namespace, path);
        if (auto o = add_xattrs(sub.get(), "", e)) read_through(e, *o);
        emit(e, -1);
        if (opaque) {
          emit(opaque_marker(e), -1);
        }
        walk_dir(sub.get(), path);
        continue;
      }
      // A regular file may be a rootless placeholder: read it through its override first,
      // so a hardlink entry to it carries the same metadata as root's would.
      UniqueFd fd;
      if (S_ISREG(st.st_mode)) {
        e.type = oci::TarType::File;
        e.size = st.st_size;
        fd = sys::openat(dirfd, disk, O_RDONLY | O_NOFOLLOW, 0, path);
        if (auto o = add_xattrs(fd.get(), "", e)) read_through(e, *o);
      }
      if (st.st_nlink > 1) {
        auto [it, inserted] = links.emplace(std::make_pair(st.st_dev, st.st_ino), path);
        if (!inserted) {
          e.type = oci::TarType::Hardlink;
          e.link_target = it->second;
          e.size = 0;
          e.xattrs.clear();
          emit(e, -1);
          continue;
        }
      }
      if (fd) {
        emit(e, e.type == oci::TarType::File ? fd.get() : -1);
        continue;
      }
      add_xattrs(dirfd, disk, e);
      if (S_ISLNK(st.st_mode)) {
        e.type = oci::TarType::Symlink;
        e.link_target = sys::readlinkat(dirfd, disk, path);
        emit(e, -1);
      } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        e.type = S_ISCHR(st.st_mode) ? oci::TarType::Char : oci::TarType::Block;
        e.dev_major = major(st.st_rdev);
        e.dev_minor = minor(st.st_rdev);
        emit(e, -1);
      } else if (S_ISFIFO(st.st_mode)) {
        e.type = oci::TarType::Fifo;
        emit(e, -1);
      }
    }
  }
};

UniqueFd open_upper(const std::filesystem::path& upper) {
  return sys::openat(AT_FDCWD, upper.string(), O_RDONLY | O_DIRECTORY, 0, upper.string());
}

std::set<std::string> cleaned_excludes(const DiffOptions& options) {
  std::set<std::string> out;
  for (auto p : options.exclude) {
    while (!p.empty() && p.front() == '/') p.erase(0, 1);
    while (!p.empty() && p.back() == '/') p.pop_back();
    if (!p.empty()) out.insert(p);
  }
  return out;
}

// A rootless upper about to become a snapshot: a set-id file is made to hold what the step's
// layer holds (the bits a write cleared, restored), and its record renewed to describe it now,
// mtime included, so a later step's write into it is read as a write (override_stat.h), and a
// chmod in this step is not mistaken for one later. Other placeholders keep their records.
// `recorded`: the file carries the attribute. Neither recorded nor set-id: nothing to do.
void renew_setid_record(int dirfd, const std::string& name, const struct stat& st, const std::string& path,
                        bool recorded) {
  if (!recorded && (st.st_mode & (S_ISUID | S_ISGID)) == 0) return;
  const std::string key(kOverrideStatXattr);
  std::optional<OverrideStat> o;
  if (recorded)
    if (auto v = sys::get_xattr(dirfd, name, key, path)) o = parse_override_stat_or_throw(*v, path);
  const OverrideStat as_is{.mode = st.st_mode,
                           .uid = st.st_uid,
                           .gid = st.st_gid,
                           .placeholder_mode = st.st_mode,
                           .placeholder_uid = st.st_uid,
                           .placeholder_gid = st.st_gid};
  struct stat eff = o ? apply_override(st, *o, path) : st;
  bool setid = S_ISREG(eff.st_mode) && (eff.st_mode & (S_ISUID | S_ISGID)) != 0;
  if (!setid && !(o && o->mtime)) return;
  struct stat now = st;
  if (o && restores_setid(st, *o)) {
    mode_t perm = (st.st_mode & 07777) | (eff.st_mode & (S_ISUID | S_ISGID));
    // Not a symlink (lstat said a regular file), and the upper is not mounted.
    if (::fchmodat(dirfd, name.c_str(), perm, 0) < 0) throw_errno("chmod", path);
    now = sys::fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW, path);
  }
  OverrideStat r = o ? *o : as_is;
  r.mode = eff.st_mode;
  r.uid = eff.st_uid;
  r.gid = eff.st_gid;
  r.placeholder_mode = now.st_mode;
  r.placeholder_uid = now.st_uid;
  r.placeholder_gid = now.st_gid;
  r.mtime.reset();
  if (setid) r.mtime = FileTime{.sec = now.st_mtim.tv_sec, .nsec = static_cast<std::uint32_t>(now.st_mtim.tv_nsec)};
  sys::set_xattr(dirfd, name, key, format_override_stat(r), path);
}

void renew_dir(int dirfd, const std::string& prefix) {
  for (const auto& n : sys::list_dir(dirfd, prefix.empty() ? "/" : prefix)) {
    std::string path = prefix.empty() ? n : prefix + "/" + n;
    struct stat st = sys::fstatat(dirfd, n, AT_SYMLINK_NOFOLLOW, path);
    if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) != 0) {
      // A record without the set-id bits on disk is a device's or an owner's (placeholders
      // keep the real permission bits), which older records need nothing more for.
      renew_setid_record(dirfd, n, st, path, true);
    } else if (S_ISDIR(st.st_mode)) {
      UniqueFd sub = sys::openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, path);
      renew_dir(sub.get(), path);
    }
  }
}

void strip_dir(int dirfd, const std::string& prefix, const std::set<std::string>& exclude, XattrNamespace ns) {
  for (const auto& n : sys::list_dir(dirfd, prefix.empty() ? "/" : prefix)) {
    std::string path = prefix.empty() ? n : prefix + "/" + n;
    if (exclude.count(path)) {
      sys::remove_all_at(dirfd, n, path);
      continue;
    }
    struct stat st = sys::fstatat(dirfd, n, AT_SYMLINK_NOFOLLOW, path);
    const std::string keep = opaque_xattr(ns);
    bool recorded = false;
    for (const auto& key : sys::list_xattrs(dirfd, n, path)) {
      recorded |= key == kOverrideStatXattr;
      if (is_overlay_private_xattr(key) && key != keep) sys::remove_xattr(dirfd, n, key, path);
    }
    if (S_ISREG(st.st_mode) && ns == XattrNamespace::User) renew_setid_record(dirfd, n, st, path, recorded);
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub = sys::openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, path);
      strip_dir(sub.get(), path, exclude, ns);
    }
  }
}

}  // namespace

std::string setid_restored_warning(const std::vector<std::string>& paths, std::string_view who,
                                   std::string_view cause) {
  constexpr std::size_t kNamed = 5;
  std::string names;
  for (std::size_t i = 0; i < paths.size() && i < kNamed; ++i) names += (i ? ", " : "") + paths[i];
  if (paths.size() > kNamed) names += ", ...";
  return std::string(who) + ": this step wrote into " + std::to_string(paths.size()) + " setuid/setgid file(s) (" +
         names + "); " + std::string(cause) +
         " cleared their setuid/setgid bits, which a root build keeps, so the layer keeps them; a chmod that "
         "removed them in the same step is lost (docs/rootless.md)";
}

std::uint64_t walk_diff(const std::filesystem::path& upper, const DiffOptions& options, const DiffVisitor& visit) {
  UniqueFd root = open_upper(upper);
  Walker w{options, visit, cleaned_excludes(options), {}, 0, {}, {}};
  w.walk_dir(root.get(), "");
  if (options.warn && !w.stand_in_owners.empty()) {
    std::string msg = "rootless mode: this step changed " + std::to_string(w.stand_in_owners.size()) +
                      " file(s) whose image owner the user namespace cannot hold (" + w.stand_in_owners.front() +
                      (w.stand_in_owners.size() > 1 ? ", ..." : "") +
                      "); they keep that owner in the layer, so a chown to the stand-in owner they show "
                      "inside is lost (docs/rootless.md)";
    options.warn(msg);
  }
  if (options.warn && !w.setid_restored.empty())
    options.warn(setid_restored_warning(w.setid_restored, "rootless mode", "the user namespace"));
  return w.count;
}

std::uint64_t write_diff(const std::filesystem::path& upper, oci::TarWriter& writer, const DiffOptions& options) {
  return walk_diff(upper, options, [&](const oci::TarEntry& e, int fd) {
    if (fd >= 0) writer.add_file(e, fd);
    else writer.add(e);
  });
}

void strip_for_commit(const std::filesystem::path& upper, const DiffOptions& options) {
  UniqueFd root = open_upper(upper);
  const std::string keep = opaque_xattr(options.xattr_namespace);
  for (const auto& key : sys::list_xattrs(root.get(), ".", upper.string()))
    if (is_overlay_private_xattr(key) && key != keep) sys::remove_xattr(root.get(), ".", key, upper.string());
  strip_dir(root.get(), "", cleaned_excludes(options), options.xattr_namespace);
}

void renew_setid_records(const std::filesystem::path& dir) {
  UniqueFd root = open_upper(dir);
  renew_dir(root.get(), "");
}

}  // namespace cbuild::overlay
