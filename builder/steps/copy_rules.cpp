#include "builder/steps/copy_rules.h"

#include <cerrno>
#include <tuple>
#include <vector>

#include "builder/plan/exec_plan.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"

namespace cbuild::builder {

std::pair<std::uint32_t, std::uint32_t> copy_owner(const CopySpec& spec, const struct stat& st) {
  if (spec.uid) return {*spec.uid, spec.gid.value_or(*spec.uid)};
  if (!spec.keep_owner) return {0, 0};
  return {st.st_uid, st.st_gid};
}

std::uint32_t copy_mode(const CopySpec& spec, const struct stat& st) {
  return spec.chmod ? *spec.chmod : static_cast<std::uint32_t>(st.st_mode & 07777);
}

std::pair<std::uint32_t, std::uint32_t> created_owner(const CopySpec& spec) {
  return {spec.uid.value_or(0), spec.gid.value_or(spec.uid.value_or(0))};
}

namespace {

// A parent directory the copy needs; nullopt when one is there (through symlinks too).
std::optional<Landing> decide_parent(const std::string& path, const CopySpec& spec, CopyTarget& target) {
  CopyTarget::Entry there = target.at(path);
  if (there.exists && (S_ISDIR(there.type) || (S_ISLNK(there.type) && target.is_dir(path)))) return std::nullopt;
  Landing l{.path = path};
  std::tie(l.uid, l.gid) = created_owner(spec);
  if (!there.exists) {
    l.op = Landing::Op::Mkdir;
    l.mode = 0755;
  } else if (S_ISLNK(there.type)) {
    l.op = Landing::Op::ChownLink;  // mkdir meets EEXIST; the walk below makes its target
  } else {
    throw_errno("open", "/" + path, ENOTDIR);  // as the first write below it would fail
  }
  return l;
}

}  // namespace

std::optional<Landing> decide_landing(const CopyItem& item, const CopySpec& spec, const CopyTarget::Entry& there) {
  Landing l{.path = item.dest, .item = &item};
  const bool there_dir = there.exists && S_ISDIR(there.type);
  if (S_ISDIR(item.st.st_mode)) {
    if (there.exists && !there_dir)  // BuildKit refuses it too; never replaced
      throw Error(ErrorKind::FailedPrecondition, "cannot copy the directory " + quote(item.src.empty() ? "." : item.src) +
                                                     " onto the non-directory " + quote("/" + item.dest));
    if (item.into) {
      if (there.exists) return std::nullopt;  // kept as it is: mode, owner and times
      l.op = Landing::Op::IntoDir;
      l.mode = 0755;
      std::tie(l.uid, l.gid) = created_owner(spec);
      return l;
    }
    if (item.lazy_parent && there_dir) {
      // fsutil's createParentDirs on an existing directory: the source's mode, nothing else.
      l.op = Landing::Op::ChmodDir;
      l.mode = item.st.st_mode & 07777;
      return l;
    }
    l.op = Landing::Op::Dir;
    l.exists = there.exists;
  } else {
    if (there_dir)
      throw Error(ErrorKind::FailedPrecondition, "cannot copy " + quote(item.src) + " onto the directory " + quote("/" + item.dest));
    l.replace = there.exists;
    if (S_ISLNK(item.st.st_mode)) {
      l.op = Landing::Op::Symlink;
    } else if (S_ISREG(item.st.st_mode)) {
      l.op = item.link_to.empty() ? Landing::Op::File : Landing::Op::Hardlink;
      l.capability = l.op == Landing::Op::File && spec.keep_owner;
    } else if (S_ISFIFO(item.st.st_mode) || (S_ISSOCK(item.st.st_mode) && spec.keep_owner)) {
      if (!there.exists) return std::nullopt;
      l.op = Landing::Op::Remove;
      return l;
    } else {
      l.op = Landing::Op::EmptyFile;
    }
  }
  std::tie(l.uid, l.gid) = copy_owner(spec, item.st);
  // --chmod spares symlinks: a link's own mode is what lstat shows (0777).
  l.mode = l.op == Landing::Op::Symlink ? static_cast<std::uint32_t>(item.st.st_mode & 07777) : copy_mode(spec, item.st);
  l.mtime = item.st.st_mtim;
  return l;
}

std::string copy_destination(const std::string& dest, CopyTarget& target) {
  std::string out = "/" + target.resolve(dest);
  if (dest_names_directory(dest) && out.back() != '/') out += '/';
  return out;
}

CopyStats land_copy(int src_root, const CopyPlan& plan, const CopySpec& spec, CopyTarget& target) {
  CopyStats stats;
  for (const auto& p : plan.parents)
    if (auto l = decide_parent(p, spec, target)) target.land(*l);
  std::vector<Landing> dir_times;
  for (const auto& it : plan.items) {
    check_cancelled();
    if (it.dest.empty()) throw Error(ErrorKind::InvalidArgument, "path " + quote(it.dest) + " names the root directory itself");
    std::optional<Landing> decided = decide_landing(it, spec, target.at(it.dest));
    if (!decided) continue;
    Landing& l = *decided;
    l.src_root = src_root;
    target.land(l);
    switch (l.op) {
      case Landing::Op::IntoDir: ++stats.dirs; break;
      case Landing::Op::Dir:
        ++stats.dirs;
        dir_times.push_back(Landing{.op = Landing::Op::DirTime, .path = l.path, .mtime = l.mtime, .item = &it});
        break;
      case Landing::Op::Symlink: ++stats.symlinks; break;
      case Landing::Op::Hardlink:
      case Landing::Op::EmptyFile: ++stats.files; break;
      case Landing::Op::File:
        ++stats.files;
        stats.bytes += static_cast<std::uint64_t>(it.st.st_size);
        break;
      default: break;
    }
  }
  // Directory times last, deepest first, after their contents stopped changing.
  for (auto i = dir_times.rbegin(); i != dir_times.rend(); ++i) target.land(*i);
  return stats;
}

}  // namespace cbuild::builder
