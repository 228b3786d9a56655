#include "overlay/safe_path.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#include <unistd.h>

#include <array>
#include <cerrno>
#include <deque>
#include <vector>

#include "oci/base/error.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::overlay {
namespace {

constexpr int kMaxSymlinks = 40;  // the kernel's MAXSYMLINKS

void split_into(std::string_view path, std::deque<std::string>& out, bool front) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) parts.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  if (front) out.insert(out.begin(), parts.begin(), parts.end());
  else out.insert(out.end(), parts.begin(), parts.end());
}

// The fallback walk. `stack` holds the root at [0] and each directory entered since; "..":
// pop (never below the root); absolute symlink: back to the root. Returns -errno on failure.
int walk_in_root(int root_fd, std::string_view path, int flags, mode_t mode, UniqueFd& result) {
  std::vector<UniqueFd> stack;
  int r = sys::try_openat(root_fd, ".", O_PATH | O_DIRECTORY);
  if (r < 0) return r;
  stack.emplace_back(r);
  std::deque<std::string> todo;
  split_into(path, todo, false);
  int links = 0;
  const bool follow_leaf = !(flags & O_NOFOLLOW);
  while (!todo.empty()) {
    std::string comp = std::move(todo.front());
    todo.pop_front();
    const bool last = todo.empty();
    if (comp == ".") {
      if (last) break;
      continue;
    }
    if (comp == "..") {
      if (stack.size() > 1) stack.pop_back();
      if (last) break;
      continue;
    }
    int cur = stack.back().get();
    struct stat st {};
    if (::fstatat(cur, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT && last && (flags & O_CREAT)) {
        int fd = sys::try_openat(cur, comp.c_str(), flags | O_NOFOLLOW, mode);
        if (fd < 0) return fd;
        result.reset(fd);
        return 0;
      }
      return -errno;
    }
    if (S_ISLNK(st.st_mode) && (!last || follow_leaf)) {
      if (++links > kMaxSymlinks) return -ELOOP;
      std::string target;
      try {
        target = sys::readlinkat(cur, comp, comp);
      } catch (const Error& e) {
        return -(e.sys_errno() ? e.sys_errno() : EINVAL);
      }
      if (!target.empty() && target[0] == '/') stack.resize(1);
      split_into(target, todo, true);
      if (todo.empty()) break;  // a link to "/" (or "") as the leaf: the directory reached
      continue;
    }
    if (last) {
      if ((flags & O_CREAT) && (flags & O_EXCL)) return -EEXIST;
      int fd = sys::try_openat(cur, comp.c_str(), (flags & ~(O_CREAT | O_EXCL)) | O_NOFOLLOW, mode);
      if (fd < 0) return fd;
      result.reset(fd);
      return 0;
    }
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    int fd = sys::try_openat(cur, comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0) return fd;
    stack.emplace_back(fd);
  }
  // The path ended at a directory on the stack ("", ".", "..", or a symlink to one).
  if ((flags & O_CREAT) && (flags & O_EXCL)) return -EEXIST;
  int fd = sys::try_openat(stack.back().get(), ".", flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW), mode);
  if (fd < 0) return fd;
  result.reset(fd);
  return 0;
}

}  // namespace

std::string clean_path(std::string_view path) {
  std::deque<std::string> parts;
  split_into(path, parts, false);
  std::vector<std::string> out;
  for (auto& p : parts) {
    if (p == ".") continue;
    if (p == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(std::move(p));
  }
  std::string s;
  for (const auto& p : out) {
    if (!s.empty()) s += '/';
    s += p;
  }
  return s;
}

UniqueFd open_in_root(int root_fd, std::string_view path, int flags, mode_t mode) {
  std::string rel(path);
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  if (rel.empty()) rel = ".";
  int fd;
  UniqueFd result;
  if (sys::openat2_enabled()) {
    fd = sys::try_openat2(root_fd, rel.c_str(), static_cast<std::uint64_t>(flags), mode,
                          RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd >= 0) result.reset(fd);
  } else {
    fd = walk_in_root(root_fd, rel, flags, mode, result);
  }
  if (fd < 0) throw_errno("open in root", path, -fd);
  return result;
}

namespace {
UniqueFd mkdir_in_root_depth(int root_fd, std::string_view path, mode_t mode, int depth) {
  if (depth > kMaxSymlinks) throw_errno("mkdir in root", path, ELOOP);
  std::string cleaned = clean_path(path);
  // Fast path: the directory usually exists already (one resolution instead of one per
  // component). open_in_root contains it exactly as the walk below would.
  if (!cleaned.empty()) {
    try {
      return open_in_root(root_fd, cleaned, O_RDONLY | O_DIRECTORY);
    } catch (const Error& e) {
      if (e.sys_errno() != ENOENT) throw;
    }
  }
  UniqueFd cur = open_in_root(root_fd, "", O_PATH | O_DIRECTORY);
  if (cleaned.empty()) return sys::openat(cur.get(), ".", O_RDONLY | O_DIRECTORY, 0, path);
  // Walk component by component: each existing one is resolved inside the root from the
  // root (so symlinks on the way stay contained), each missing one is created in the
  // directory reached so far.
  std::string prefix;
  std::size_t i = 0;
  while (i <= cleaned.size()) {
    std::size_t j = cleaned.find('/', i);
    if (j == std::string::npos) j = cleaned.size();
    std::string comp = cleaned.substr(i, j - i);
    prefix += (prefix.empty() ? "" : "/") + comp;
    UniqueFd next;
    try {
      next = open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY);
    } catch (const Error& e) {
      if (e.sys_errno() != ENOENT) throw;
      // Missing: the name comp is absent in cur, or a dangling symlink points elsewhere.
      auto st = sys::try_lstatat(cur.get(), comp, prefix);
      if (st && S_ISLNK(st->st_mode)) {
        // A dangling symlink on the way: create its target inside the root.
        std::string target = sys::readlinkat(cur.get(), comp, prefix);
        std::string base = prefix.substr(0, prefix.size() - comp.size());
        std::string resolved = (!target.empty() && target[0] == '/') ? target : base + target;
        next = mkdir_in_root_depth(root_fd, resolved, mode, depth + 1);
      } else {
        if (::mkdirat(cur.get(), comp.c_str(), mode) < 0 && errno != EEXIST) throw_errno("mkdir", prefix);
        next = open_in_root(root_fd, prefix, O_PATH | O_DIRECTORY);
      }
    }
    cur = std::move(next);
    i = j + 1;
  }
  return sys::openat(cur.get(), ".", O_RDONLY | O_DIRECTORY, 0, path);
}
}  // namespace

UniqueFd mkdir_in_root(int root_fd, std::string_view path, mode_t mode) {
  return mkdir_in_root_depth(root_fd, path, mode, 0);
}

ParentAndLeaf open_parent_in_root(int root_fd, std::string_view path, bool create_parents) {
  std::string cleaned = clean_path(path);
  if (cleaned.empty())
    throw Error(ErrorKind::InvalidArgument, "path " + quote(path) + " names the root directory itself");
  std::size_t slash = cleaned.rfind('/');
  std::string parent = slash == std::string::npos ? "" : cleaned.substr(0, slash);
  std::string leaf = slash == std::string::npos ? cleaned : cleaned.substr(slash + 1);
  UniqueFd dir = create_parents ? mkdir_in_root(root_fd, parent)
                                : open_in_root(root_fd, parent, O_RDONLY | O_DIRECTORY);
  return {std::move(dir), std::move(leaf), std::move(cleaned)};
}

std::string resolve_links(std::string_view path,
                          const std::function<std::optional<std::string>(const std::string&)>& link_at) {
  std::deque<std::string> todo;
  split_into(path, todo, false);
  std::vector<std::string> done;
  auto joined = [&done] {
    std::string s;
    for (const auto& c : done) s += (s.empty() ? "" : "/") + c;
    return s;
  };
  int links = 0;
  while (!todo.empty()) {
    std::string comp = std::move(todo.front());
    todo.pop_front();
    if (comp == ".") continue;
    if (comp == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    done.push_back(std::move(comp));
    std::optional<std::string> target = link_at(joined());
    if (!target) continue;
    if (++links > kMaxSymlinks) throw_errno("resolve in root", path, ELOOP);
    done.pop_back();
    if (!target->empty() && (*target)[0] == '/') done.clear();
    split_into(*target, todo, true);
  }
  return joined();
}

std::string resolve_in_root(int root_fd, std::string_view path) {
  return resolve_links(path, [root_fd](const std::string& p) -> std::optional<std::string> {
    // The parents of p are resolved (directories, or missing): only the leaf can be a link, so
    // the kernel meets no link before it (ENOTDIR: a file on the way, kept as a name).
    struct stat st {};
    if (::fstatat(root_fd, p.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw_errno("stat", p);
    }
    if (!S_ISLNK(st.st_mode)) return std::nullopt;
    return sys::readlinkat(root_fd, p, p);
  });
}

namespace {

std::string fd_path(int fd) {
  std::array<char, 4096> buf{};
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size() - 1);
  if (n < 0) throw_errno("readlink", link);
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

std::string path_in_root(int root_fd, int fd, std::string_view what) {
  std::string root = fd_path(root_fd), p = fd_path(fd);
  if (p == root) return "";
  if (root == "/") return p.substr(1);
  if (p.size() > root.size() && p.compare(0, root.size(), root) == 0 && p[root.size()] == '/')
    return p.substr(root.size() + 1);
  throw Error(ErrorKind::Internal, std::string(what) + " " + quote(p) + " is outside its root " + quote(root));
}

}  // namespace cbuild::overlay
