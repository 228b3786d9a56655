#include "builder/copy_files.h"

#include <dirent.h>
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

bool has_wildcard(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a + "/" + b;
}

std::string base_name(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

std::vector<std::string> split(const std::string& p) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    auto j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    if (j > i) out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// Sorted names of a directory (without "." and "..").
std::vector<std::string> list_dir(int dir_fd, const std::string& shown) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open directory", shown);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    throw_errno("read directory", shown, e);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// The path of an fd opened inside the root, relative to the root (both via /proc/self/fd).
std::string fd_path(int fd) {
  std::array<char, 4096> buf{};
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size() - 1);
  if (n < 0) throw_errno("readlink", link);
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

std::string relative_to_root(int root_fd, int fd) {
  std::string root = fd_path(root_fd);
  std::string p = fd_path(fd);
  if (p == root) return "";
  if (root == "/") return p.substr(1);
  if (p.size() > root.size() && p.compare(0, root.size(), root) == 0 && p[root.size()] == '/')
    return p.substr(root.size() + 1);
  throw Error(ErrorKind::Internal, "resolved source " + quote(p) + " is outside its root " + quote(root));
}

// Expands a cleaned pattern into matching paths (sorted), component by component.
void expand(int root, const std::vector<std::string>& comps, std::size_t i, const std::string& prefix,
            const CopySpec& spec, std::vector<std::string>& out) {
  if (i == comps.size()) {
    out.push_back(prefix);
    return;
  }
  const std::string& c = comps[i];
  if (!has_wildcard(c)) {
    expand(root, comps, i + 1, join(prefix, c), spec, out);
    return;
  }
  UniqueFd dir;
  try {
    dir = overlay::open_in_root(root, prefix.empty() ? "." : prefix, O_RDONLY | O_DIRECTORY);
  } catch (const Error&) {
    return;  // not a directory (or missing): nothing matches below it
  }
  for (const auto& name : list_dir(dir.get(), prefix)) {
    if (!match_component(c, name)) continue;
    std::string p = join(prefix, name);
    if (spec.excluded && spec.excluded(p)) continue;
    expand(root, comps, i + 1, p, spec, out);
  }
}

struct stat lstat_at(int dir_fd, const std::string& name, const std::string& shown) {
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("stat", shown);
  return st;
}

std::string read_link_at(int dir_fd, const std::string& name, const std::string& shown) {
  std::array<char, 4096> buf{};
  ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf.data(), buf.size() - 1);
  if (n < 0) throw_errno("readlink", shown);
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

// Adds the contents of the source directory `src` (resolved path) below `dest`.
void walk_dir(int root, const std::string& src, const std::string& dest, const CopySpec& spec, CopyPlan& plan) {
  UniqueFd dir = overlay::open_in_root(root, src.empty() ? "." : src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  for (const auto& name : list_dir(dir.get(), src)) {
    check_cancelled();
    std::string s = join(src, name);
    if (spec.excluded && spec.excluded(s)) continue;
    CopyItem item;
    item.src = s;
    item.dest = join(dest, name);
    item.st = lstat_at(dir.get(), name, s);
    if (S_ISSOCK(item.st.st_mode)) continue;  // sockets cannot be stored in a layer
    if (S_ISLNK(item.st.st_mode)) item.link_target = read_link_at(dir.get(), name, s);
    bool is_dir = S_ISDIR(item.st.st_mode);
    plan.items.push_back(std::move(item));
    if (is_dir) walk_dir(root, s, join(dest, name), spec, plan);
  }
}

void add_parents(const std::string& dest, std::set<std::string>& seen, std::vector<std::string>& parents) {
  auto comps = split(dest);
  std::string p;
  for (std::size_t i = 0; i + 1 < comps.size(); ++i) {
    p = join(p, comps[i]);
    if (seen.insert(p).second) parents.push_back(p);
  }
}

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

bool match_component(std::string_view pattern, std::string_view name) {
  // Go's filepath.Match for one component: '*' any run, '?' one char, '[...]' classes with
  // ranges and '^' negation, '\' escapes the next character.
  std::size_t p = 0, n = 0, star_p = std::string_view::npos, star_n = 0;
  auto match_class = [&](std::size_t& pi, char c) -> std::optional<bool> {
    // pattern[pi] == '['; returns nullopt on a malformed class.
    std::size_t i = pi + 1;
    bool negate = false;
    if (i < pattern.size() && (pattern[i] == '^' || pattern[i] == '!')) negate = true, ++i;
    bool matched = false;
    bool first = true;
    while (i < pattern.size() && (pattern[i] != ']' || first)) {
      first = false;
      char lo = pattern[i];
      if (lo == '\\' && i + 1 < pattern.size()) lo = pattern[++i];
      char hi = lo;
      if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
        hi = pattern[i + 2];
        if (hi == '\\' && i + 3 < pattern.size()) hi = pattern[i + 3], ++i;
        i += 2;
      }
      if (lo <= c && c <= hi) matched = true;
      ++i;
    }
    if (i >= pattern.size()) return std::nullopt;
    pi = i + 1;
    return matched != negate;
  };
  while (n < name.size()) {
    if (p < pattern.size()) {
      char pc = pattern[p];
      if (pc == '*') {
        star_p = p++;
        star_n = n;
        continue;
      }
      if (pc == '?') {
        ++p, ++n;
        continue;
      }
      if (pc == '[') {
        std::size_t pi = p;
        auto m = match_class(pi, name[n]);
        if (!m) return false;
        if (*m) {
          p = pi, ++n;
          continue;
        }
      } else {
        if (pc == '\\' && p + 1 < pattern.size()) pc = pattern[p + 1];
        if (pc == name[n]) {
          p += pattern[p] == '\\' && p + 1 < pattern.size() ? 2 : 1;
          ++n;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

CopyPlan plan_copy(int src_root, const CopySpec& spec, const std::function<bool(const std::string&)>& dest_is_dir) {
  if (spec.sources.empty()) throw Error(ErrorKind::InvalidArgument, "COPY: no source files were specified");
  // Resolve every source first: the destination rule depends on how many there are.
  struct Resolved {
    std::string name;      // the matched path (its last component names a copied file)
    std::string resolved;  // after following a top-level symlink, inside the root
    struct stat st {};
  };
  std::vector<Resolved> srcs;
  for (const auto& raw : spec.sources) {
    std::string cleaned = overlay::clean_path(raw);
    std::vector<std::string> matches;
    if (has_wildcard(cleaned)) {
      expand(src_root, split(cleaned), 0, "", spec, matches);
      if (matches.empty()) throw Error(ErrorKind::NotFound, "source " + quote(raw) + " matches no file");
    } else {
      if (!cleaned.empty() && spec.excluded && spec.excluded(cleaned))
        throw Error(ErrorKind::NotFound, "source " + quote(raw) + " not found (it is excluded by .dockerignore)");
      matches.push_back(cleaned);
    }
    for (auto& m : matches) {
      UniqueFd fd;
      try {
        fd = overlay::open_in_root(src_root, m.empty() ? "." : m, O_PATH);
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::NotFound) throw Error(ErrorKind::NotFound, "source " + quote(raw) + " not found");
        throw;
      }
      Resolved r;
      r.name = m;
      r.resolved = relative_to_root(src_root, fd.get());
      if (::fstat(fd.get(), &r.st) != 0) throw_errno("stat", m);
      if (S_ISSOCK(r.st.st_mode)) throw Error(ErrorKind::InvalidArgument, "source " + quote(raw) + " is a socket");
      srcs.push_back(std::move(r));
    }
  }

  std::string dest = overlay::clean_path(spec.dest);
  bool dest_dir = spec.dest.empty() || spec.dest.back() == '/' || dest.empty() || spec.dest == "." ||
                  (spec.dest.size() >= 2 && spec.dest.compare(spec.dest.size() - 2, 2, "/.") == 0);
  if (srcs.size() > 1 && !dest_dir)
    throw Error(ErrorKind::InvalidArgument,
                "when copying several sources the destination must be a directory and end with a /: " + quote(spec.dest));
  if (!dest_dir && !dest.empty() && dest_is_dir && dest_is_dir(dest)) dest_dir = true;

  CopyPlan plan;
  for (const auto& r : srcs) {
    if (S_ISDIR(r.st.st_mode)) {
      if (!dest.empty()) {
        CopyItem top;
        top.src = r.resolved;
        top.dest = dest;
        top.st = r.st;
        plan.items.push_back(std::move(top));
      }
      walk_dir(src_root, r.resolved, dest, spec, plan);
    } else {
      CopyItem item;
      item.src = r.resolved;
      item.dest = dest_dir ? join(dest, base_name(r.name.empty() ? r.resolved : r.name)) : dest;
      item.st = r.st;
      if (item.dest.empty()) throw Error(ErrorKind::InvalidArgument, "cannot copy a file onto the image root");
      plan.items.push_back(std::move(item));
    }
  }
  std::set<std::string> seen;
  for (const auto& it : plan.items) seen.insert(it.dest);
  std::set<std::string> parents_seen;
  for (const auto& it : plan.items) add_parents(it.dest, parents_seen, plan.parents);
  std::erase_if(plan.parents, [&](const std::string& p) { return seen.count(p) > 0; });
  return plan;
}

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
      if (exists && !S_ISDIR(existing.st_mode) && ::unlinkat(dfd, leaf, 0) != 0) throw_errno("replace", it.dest);
      if ((!exists || !S_ISDIR(existing.st_mode)) && ::mkdirat(dfd, leaf, 0700) != 0) throw_errno("mkdir", it.dest);
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

oci::Digest content_key(int src_root, const CopyPlan& plan, const CopySpec& spec) {
  oci::Sha256 h;
  std::vector<char> buf(1 << 20);
  auto field = [&h](std::string_view s) {
    h.update(std::to_string(s.size()) + ":");
    h.update(s);
  };
  for (const auto& p : plan.parents) field("parent " + p);
  for (const auto& it : plan.items) {
    check_cancelled();
    std::uint32_t mode = spec.chmod ? *spec.chmod : (it.st.st_mode & 07777);
    std::uint32_t uid = spec.uid ? *spec.uid : spec.keep_owner ? it.st.st_uid : 0;
    std::uint32_t gid = spec.uid ? spec.gid.value_or(*spec.uid) : spec.keep_owner ? it.st.st_gid : 0;
    field(it.dest);
    field(std::to_string(it.st.st_mode & S_IFMT) + " " + std::to_string(mode) + " " + std::to_string(uid) + ":" +
          std::to_string(gid));
    if (S_ISLNK(it.st.st_mode)) field(it.link_target);
    if (S_ISCHR(it.st.st_mode) || S_ISBLK(it.st.st_mode)) field(std::to_string(it.st.st_rdev));
    if (S_ISREG(it.st.st_mode)) {
      UniqueFd in = overlay::open_in_root(src_root, it.src, O_RDONLY | O_NOFOLLOW);
      oci::Sha256 fh;
      for (;;) {
        check_cancelled();  // per MiB: hashing a large file must not delay Ctrl-C
        std::size_t n = read_full(in.get(), buf.data(), buf.size(), it.src);
        if (n == 0) break;
        fh.update(buf.data(), n);
        if (n < buf.size()) break;
      }
      field(fh.finish().str());
    }
  }
  return h.finish();
}

}  // namespace cbuild::builder
