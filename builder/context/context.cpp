#include "builder/context/context.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "oci/base/error.h"
#include "oci/base/unique_fd.h"
#include "overlay/safe_path.h"

namespace cbuild::builder {

namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

}  // namespace

BuildContext BuildContext::read(const std::filesystem::path& dir, const DockerIgnore& ignore) {
  BuildContext ctx;
  ctx.root_ = dir;
  ctx.ignore_ = ignore;
  int root = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) throw_errno("read build context", dir.string());
  UniqueFd root_fd(root);
  // Explicit stack of (relative dir path, fd) so deep trees cannot exhaust the call stack.
  struct Pending {
    std::string rel;
    UniqueFd fd;
  };
  std::vector<Pending> stack;
  stack.push_back({"", std::move(root_fd)});
  while (!stack.empty()) {
    Pending cur = std::move(stack.back());
    stack.pop_back();
    int dfd = ::dup(cur.fd.get());
    if (dfd < 0) throw_errno("read build context", (dir / cur.rel).string());
    std::unique_ptr<DIR, DirCloser> d(fdopendir(dfd));
    if (!d) {
      int err = errno;
      ::close(dfd);
      throw_errno("read build context directory", (dir / cur.rel).string(), err);
    }
    for (;;) {
      errno = 0;
      dirent* e = readdir(d.get());
      if (!e) {
        if (errno != 0) throw_errno("read build context directory", (dir / cur.rel).string());
        break;
      }
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string rel = cur.rel.empty() ? name : cur.rel + "/" + name;
      ContextEntry entry;
      entry.path = rel;
      if (fstatat(cur.fd.get(), name.c_str(), &entry.st, AT_SYMLINK_NOFOLLOW) != 0)
        throw_errno("stat build context entry", (dir / rel).string());
      bool is_dir = S_ISDIR(entry.st.st_mode);
      DockerIgnore::Verdict v = ignore.entry_verdict(rel);  // its parents were entered
      if (v == DockerIgnore::Verdict::Excluded || (v == DockerIgnore::Verdict::SentIfDirectory && !is_dir)) continue;
      if (S_ISLNK(entry.st.st_mode)) {
        std::string buf(static_cast<std::size_t>(entry.st.st_size > 0 ? entry.st.st_size : 255) + 1, '\0');
        ssize_t n = readlinkat(cur.fd.get(), name.c_str(), buf.data(), buf.size());
        if (n < 0) throw_errno("read symlink in build context", (dir / rel).string());
        buf.resize(static_cast<std::size_t>(n));
        entry.link_target = std::move(buf);
      }
      if (is_dir) {
        int sub = ::openat(cur.fd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) throw_errno("open build context directory", (dir / rel).string());
        stack.push_back({rel, UniqueFd(sub)});
      }
      ctx.entries_.push_back(std::move(entry));
    }
  }
  std::sort(ctx.entries_.begin(), ctx.entries_.end(),
            [](const ContextEntry& a, const ContextEntry& b) { return a.path < b.path; });
  return ctx;
}

const ContextEntry* BuildContext::find(std::string_view path) const {
  std::string p = clean_path(path);
  while (!p.empty() && p[0] == '/') p.erase(0, 1);
  auto it = std::lower_bound(entries_.begin(), entries_.end(), p,
                             [](const ContextEntry& e, const std::string& k) { return e.path < k; });
  if (it == entries_.end() || it->path != p) return nullptr;
  return &*it;
}

std::function<bool(const std::string&)> BuildContext::excluded_predicate() const {
  return context_exclusion(root_, ignore_);
}

std::function<bool(const std::string&)> context_exclusion(const std::filesystem::path& dir, DockerIgnore ignore) {
  if (ignore.patterns().empty()) return nullptr;
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open build context", dir.string());
  struct State {
    UniqueFd root;
    DockerIgnore ignore;
    std::mutex mu;
    std::unordered_map<std::string, bool> cut;  // directory -> the walk leaves it out whole
  };
  auto state = std::make_shared<State>();
  state->root = UniqueFd(fd);
  state->ignore = std::move(ignore);
  return [state](const std::string& raw) {
    const DockerIgnore& ignore = state->ignore;
    std::string path = clean_path(raw);
    while (!path.empty() && path[0] == '/') path.erase(0, 1);
    // Copy code asks about every entry of a tree: each parent's own verdict is worked out once.
    if (ignore.has_exceptions()) {
      std::lock_guard lock(state->mu);
      for (std::size_t i = path.find('/'); i != std::string::npos; i = path.find('/', i + 1)) {
        std::string dir = path.substr(0, i);
        auto [it, added] = state->cut.try_emplace(dir, false);
        if (added) it->second = ignore.entry_verdict(dir) == DockerIgnore::Verdict::Excluded;
        if (it->second) return true;
      }
    }
    switch (ignore.has_exceptions() ? ignore.entry_verdict(path) : ignore.context_verdict(path)) {
      case DockerIgnore::Verdict::Sent:
        return false;
      case DockerIgnore::Verdict::Excluded:
        return true;
      case DockerIgnore::Verdict::SentIfDirectory:
        break;
    }
    auto slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "." : path.substr(0, slash);
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    UniqueFd dir_fd;
    try {
      dir_fd = overlay::open_in_root(state->root.get(), parent, O_PATH | O_DIRECTORY);
    } catch (const Error&) {
      return true;  // no such directory: nothing of it is sent
    }
    struct stat st {};
    return ::fstatat(dir_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode);
  };
}

}  // namespace cbuild::builder
