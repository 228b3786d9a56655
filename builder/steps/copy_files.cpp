// apply_copy() and content_key(): writing a CopyPlan into the image and hashing what it reads
// (the plan itself is made in copy_plan.cpp).
#include "builder/steps/copy_files.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <set>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/safe_path.h"

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

CopyStats apply_copy(int src_root, int dest_root, const CopyPlan& plan, const CopySpec& spec) {
  CopyStats stats;
  auto owner = [&](const struct stat& st) -> std::pair<uid_t, gid_t> {
    if (spec.uid) return {*spec.uid, spec.gid.value_or(*spec.uid)};
    if (!spec.keep_owner) return {0, 0};
    return {st.st_uid, st.st_gid};
  };
  // Parents the copy needs: created 0755, owned like the copied files, only if missing.
  for (const auto& p : plan.parents) {
    auto pl = overlay::open_parent_in_root(dest_root, p, /*create_parents=*/true);
    struct stat st {};
    if (::fstatat(pl.dir.get(), pl.leaf.c_str(), &st, 0) == 0 && S_ISDIR(st.st_mode)) continue;
    if (::mkdirat(pl.dir.get(), pl.leaf.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir", p);
    uid_t u = spec.uid.value_or(0);
    gid_t g = spec.gid.value_or(spec.uid.value_or(0));
    if (::fchownat(pl.dir.get(), pl.leaf.c_str(), u, g, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", p);
  }
  struct DirMeta {
    std::string dest;
    struct timespec mtime;
  };
  std::vector<DirMeta> dirs;
  for (const auto& it : plan.items) {
    check_cancelled();
    auto pl = overlay::open_parent_in_root(dest_root, it.dest, /*create_parents=*/true);
    int dfd = pl.dir.get();
    const char* leaf = pl.leaf.c_str();
    auto [uid, gid] = owner(it.st);
    mode_t perm = spec.chmod ? static_cast<mode_t>(*spec.chmod) : (it.st.st_mode & 07777);
    struct stat existing {};
    bool exists = ::fstatat(dfd, leaf, &existing, AT_SYMLINK_NOFOLLOW) == 0;
    if (S_ISDIR(it.st.st_mode)) {
      if (exists && !S_ISDIR(existing.st_mode))  // BuildKit refuses it too; never replaced
        throw Error(ErrorKind::FailedPrecondition, "cannot copy the directory " + quote(it.src.empty() ? "." : it.src) +
                                                       " onto the non-directory " + quote("/" + it.dest));
      if (it.into) {
        if (exists) continue;
        if (::mkdirat(dfd, leaf, 0700) != 0) throw_errno("mkdir", it.dest);
        uid_t u = spec.uid.value_or(0);
        gid_t g = spec.gid.value_or(spec.uid.value_or(0));
        if (::fchownat(dfd, leaf, u, g, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", it.dest);
        if (::fchmodat(dfd, leaf, 0755, 0) != 0) throw_errno("chmod", it.dest);
        ++stats.dirs;
        continue;
      }
      if (it.lazy_parent && exists && S_ISDIR(existing.st_mode)) {
        // fsutil's createParentDirs on an existing directory: the source's mode, nothing else.
        if (::fchmodat(dfd, leaf, it.st.st_mode & 07777, 0) != 0) throw_errno("chmod", it.dest);
        continue;
      }
      if (!exists && ::mkdirat(dfd, leaf, 0700) != 0) throw_errno("mkdir", it.dest);
      if (::fchownat(dfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", it.dest);
      if (::fchmodat(dfd, leaf, perm, 0) != 0) throw_errno("chmod", it.dest);
      dirs.push_back({it.dest, it.st.st_mtim});
      ++stats.dirs;
      continue;
    }
    if (exists) {
      if (S_ISDIR(existing.st_mode))
        throw Error(ErrorKind::FailedPrecondition, "cannot copy " + quote(it.src) + " onto the directory " + quote("/" + it.dest));
      if (::unlinkat(dfd, leaf, 0) != 0) throw_errno("replace", it.dest);
    }
    if (S_ISLNK(it.st.st_mode)) {
      if (::symlinkat(it.link_target.c_str(), dfd, leaf) != 0) throw_errno("symlink", it.dest);
      if (::fchownat(dfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", it.dest);
      struct timespec ts[2] = {it.st.st_mtim, it.st.st_mtim};
      ::utimensat(dfd, leaf, ts, AT_SYMLINK_NOFOLLOW);
      ++stats.symlinks;
      continue;
    }
    if (S_ISREG(it.st.st_mode) && !it.link_to.empty()) {
      // Another name of a file this copy made (same source inode): link it, as BuildKit does.
      auto first = overlay::open_parent_in_root(dest_root, it.link_to, false);
      if (::linkat(first.dir.get(), first.leaf.c_str(), dfd, leaf, 0) != 0) throw_errno("link", it.dest);
      ++stats.files;
      continue;
    }
    if (S_ISREG(it.st.st_mode)) {
      UniqueFd in = overlay::open_in_root(src_root, it.src, O_RDONLY | O_NOFOLLOW);
      int ofd = ::openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (ofd < 0) throw_errno("create", it.dest);
      UniqueFd out(ofd);
      copy_content(in.get(), out.get(), it.st.st_size, it.src);
      if (::fchown(out.get(), uid, gid) != 0) throw_errno("chown", it.dest);
      // chmod after chown: chown clears setuid/setgid bits.
      if (::fchmod(out.get(), perm) != 0) throw_errno("chmod", it.dest);
      struct timespec ts[2] = {it.st.st_mtim, it.st.st_mtim};
      if (::futimens(out.get(), ts) != 0) throw_errno("set times", it.dest);
      ++stats.files;
      stats.bytes += static_cast<std::uint64_t>(it.st.st_size);
      continue;
    }
    // fifos and devices
    if (::mknodat(dfd, leaf, (it.st.st_mode & S_IFMT) | perm, it.st.st_rdev) != 0) throw_errno("mknod", it.dest);
    if (::fchownat(dfd, leaf, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", it.dest);
  }
  // Directory times last, deepest first, after their contents stopped changing.
  for (auto i = dirs.rbegin(); i != dirs.rend(); ++i) {
    auto pl = overlay::open_parent_in_root(dest_root, i->dest, false);
    struct timespec ts[2] = {i->mtime, i->mtime};
    ::utimensat(pl.dir.get(), pl.leaf.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  }
  return stats;
}

UniqueFd SourceFiles::open(const std::string& src) {
  auto slash = src.rfind('/');
  std::string dir = slash == std::string::npos ? "" : src.substr(0, slash);
  std::string leaf = slash == std::string::npos ? src : src.substr(slash + 1);
  if (!dir_fd_ || dir != dir_) {
    dir_fd_ = overlay::open_in_root(root_, dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
    dir_ = dir;
  }
  if (leaf.empty() || leaf == "." || leaf == "..") return overlay::open_in_root(root_, src, O_RDONLY | O_NOFOLLOW);
  int fd = ::openat(dir_fd_.get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw_errno("open", src);
  return UniqueFd(fd);
}

oci::Digest content_key(int src_root, const CopyPlan& plan, const CopySpec& spec, ContentHashes* hashes) {
  oci::Sha256 h;
  std::vector<char> buf(1 << 20);
  auto field = [&h](std::string_view s) {
    h.update(std::to_string(s.size()) + ":");
    h.update(s);
  };
  SourceFiles files(src_root);
  for (const auto& p : plan.parents) field("parent " + p);
  for (const auto& it : plan.items) {
    check_cancelled();
    std::uint32_t mode = spec.chmod ? *spec.chmod : (it.st.st_mode & 07777);
    std::uint32_t uid = spec.uid ? *spec.uid : spec.keep_owner ? it.st.st_uid : 0;
    std::uint32_t gid = spec.uid ? spec.gid.value_or(*spec.uid) : spec.keep_owner ? it.st.st_gid : 0;
    field(it.lazy_parent ? "parent-of " + it.dest : it.dest);
    field(std::to_string(it.st.st_mode & S_IFMT) + " " + std::to_string(mode) + " " + std::to_string(uid) + ":" +
          std::to_string(gid));
    if (S_ISLNK(it.st.st_mode)) field(it.link_target);
    if (!it.link_to.empty()) field("link " + it.link_to);
    if (S_ISCHR(it.st.st_mode) || S_ISBLK(it.st.st_mode)) field(std::to_string(it.st.st_rdev));
    if (S_ISREG(it.st.st_mode)) {
      FileStamp stamp = FileStamp::of(it.st);
      if (auto known = hashes ? hashes->find(stamp) : std::nullopt) {
        field(known->str());
        continue;
      }
      UniqueFd in = files.open(it.src);
      oci::Sha256 fh;
      // The planned size, as the layer's tar takes it: no read is spent finding EOF (a file
      // that changed size meanwhile fails the stat check below, and the layer's own read).
      auto left = static_cast<std::uint64_t>(it.st.st_size);
      while (left > 0) {
        check_cancelled();  // per MiB: hashing a large file must not delay Ctrl-C
        std::size_t n = read_full(in.get(), buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size())), it.src);
        if (n == 0) break;
        fh.update(buf.data(), n);
        left -= n;
      }
      oci::Digest d = fh.finish();
      struct stat after {};
      if (hashes && ::fstat(in.get(), &after) == 0 && FileStamp::of(after) == stamp) hashes->put(stamp, d);
      field(d.str());
    }
  }
  return h.finish();
}

}  // namespace cbuild::builder
