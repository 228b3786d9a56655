#include "builder/steps/layer_tree.h"

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <fstream>
#include <utility>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "overlay/layer_xattrs.h"
#include "overlay/override_stat.h"
#include "overlay/safe_path.h"
#include "overlay/sys/syscalls.h"
#include "overlay/whiteout.h"

namespace cbuild::builder {

struct LayerTree::Node {
  oci::TarEntry e;           // path unused: `path` below is the one written
  std::string path;          // inside the image, "" for the root
  Node* parent = nullptr;
  bool in_upper = false;     // false: a directory of the lower met on the way, not (yet) copied up
  bool lower_backed = false; // a directory whose lower counterpart shows through it
  bool touched = false;      // an entry was created or removed in it: its mtime becomes "now"
  bool times_set = false;    // utimens after the last change: keep e.mtime
  bool has_whiteout_child = false;
  int src_root = -1;         // regular files: read from (src_root, src) when written; -1: empty
  std::uint64_t link_group = 0;  // regular files sharing an inode share a non-zero group
  std::string src;
  FileStamp stamp;           // regular files: the source's stat data when it was planned
  std::map<std::string, std::unique_ptr<Node>> children;  // upper entries and lower dirs on the way
};

struct LayerTree::Found {
  bool exists = false;
  mode_t type = 0;          // S_IFMT bits
  Node* node = nullptr;     // the upper entry (or lower dir already met); null when only in the lower
  struct stat lst {};       // the lower's stat when node is null
  std::string link_target;  // symlinks
};

// Walks `path` like overlay/safe_path.h: intermediate components must be directories
// (created 0755 less umask, owned 0:0, when `create` — what mkdir_in_root does, including the
// target of a dangling symlink on the way); the last one is followed when `follow`. Returns
// the directory the (last) leaf is in, its name ("" for the root) and what is there.
struct LayerTree::Walked {
  Node* dir;
  std::string leaf;
  Found f;
};

namespace {

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

std::deque<std::string> components(std::string_view p) {
  std::deque<std::string> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

mode_t current_umask() {
  // /proc/self/status has it without the set-and-restore race of umask(2).
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  return 022;
}

void set_mtime(oci::TarEntry& e, const struct timespec& t) {
  e.mtime_sec = t.tv_sec;
  e.mtime_nsec = static_cast<std::uint32_t>(t.tv_nsec);
}

}  // namespace

namespace {

// Copies `n` and its ancestors up (overlayfs does on any change below them), reading the
// lower's xattrs once.
void make_upper(LayerTree::Node* n, int lower) {
  for (; n && !n->in_upper; n = n->parent) {
    n->in_upper = true;
    for (const auto& key : overlay::sys::list_xattrs(lower, n->path, n->path)) {
      if (!overlay::layer_keeps_xattr(key)) continue;
      if (auto v = overlay::sys::get_xattr(lower, n->path, key, n->path)) n->e.xattrs.emplace_back(key, std::move(*v));
    }
  }
}

}  // namespace

LayerTree::LayerTree(int lower_root, std::optional<std::int64_t> fixed_now)
    : lower_(lower_root), root_(std::make_unique<Node>()) {
  root_->e.type = oci::TarType::Dir;
  root_->in_upper = true;
  root_->lower_backed = lower_root >= 0;
  if (fixed_now) {
    now_sec_ = *fixed_now;
    now_nsec_ = 0;
  } else {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    now_sec_ = now.tv_sec;
    now_nsec_ = static_cast<std::uint32_t>(now.tv_nsec);
  }
  umask_ = current_umask();
}

LayerTree::~LayerTree() = default;

LayerTree::Node* LayerTree::root() { return root_.get(); }

std::optional<struct stat> LayerTree::lower_stat(const std::string& path) {
  // Every component before the leaf is a real directory of the lower (lower_backed nodes are
  // only made for lstat'ed directories), so this path walk follows no symlink but the leaf's,
  // which AT_SYMLINK_NOFOLLOW refuses.
  return overlay::sys::try_lstatat(lower_, path, path);
}

LayerTree::Found LayerTree::lookup(Node* dir, const std::string& name) {
  Found f;
  if (auto it = dir->children.find(name); it != dir->children.end()) {
    Node* n = it->second.get();
    f.exists = true;
    f.node = n;
    switch (n->e.type) {
      case oci::TarType::Dir: f.type = S_IFDIR; break;
      case oci::TarType::Symlink: f.type = S_IFLNK; break;
      case oci::TarType::Char: f.type = S_IFCHR; break;
      case oci::TarType::Block: f.type = S_IFBLK; break;
      case oci::TarType::Fifo: f.type = S_IFIFO; break;
      default: f.type = S_IFREG; break;
    }
    f.link_target = n->e.link_target;
    return f;
  }
  if (!dir->lower_backed) return f;
  std::string path = join(dir->path, name);
  auto st = lower_stat(path);
  if (!st) return f;
  f.exists = true;
  f.type = st->st_mode & S_IFMT;
  f.lst = *st;
  if (S_ISLNK(st->st_mode)) f.link_target = overlay::sys::readlinkat(lower_, path, path);
  return f;
}

// The node of a lower entry `name` of `dir` as overlayfs would copy it up: its owner, mode,
// mtime (and, once copied up, xattrs). Directories stay "not in the upper" until something
// changes in or below them.
LayerTree::Node* LayerTree::copy_up(Node* dir, const std::string& name, const struct stat& st) {
  auto n = std::make_unique<Node>();
  n->path = join(dir->path, name);
  n->parent = dir;
  n->e.mode = st.st_mode & 07777;
  n->e.uid = st.st_uid;
  n->e.gid = st.st_gid;
  set_mtime(n->e, st.st_mtim);
  if (S_ISDIR(st.st_mode)) {
    n->e.type = oci::TarType::Dir;
    n->lower_backed = true;
    // A rootless snapshot's placeholder directory is copied up with its real owner and mode.
    if (auto v = overlay::sys::get_xattr(lower_, n->path, std::string(overlay::kOverrideStatXattr), n->path))
      overlay::apply_override(n->e, overlay::parse_override_stat_or_throw(*v, n->path));
  } else if (S_ISLNK(st.st_mode)) {
    n->e.type = oci::TarType::Symlink;
    n->e.link_target = overlay::sys::readlinkat(lower_, n->path, n->path);
  } else {
    // Only directories and symlinks are ever copied up (a copy replaces everything else).
    throw_errno("copy up", "/" + n->path, ENOTDIR);
  }
  Node* p = n.get();
  dir->children[name] = std::move(n);
  return p;
}


LayerTree::Node* LayerTree::add_node(Node* dir, const std::string& name, std::unique_ptr<Node> n) {
  make_upper(dir, lower_);
  dir->touched = true;
  n->parent = dir;
  n->path = join(dir->path, name);
  n->in_upper = true;
  Node* p = n.get();
  dir->children[name] = std::move(n);
  return p;
}

void LayerTree::remove(Node* dir, const std::string& name) {
  make_upper(dir, lower_);
  dir->touched = true;
  dir->children.erase(name);
}


LayerTree::Walked LayerTree::walk(const std::string& path, bool create, bool follow, std::uint32_t uid,
                                  std::uint32_t gid, const char* verb) {
  std::deque<std::string> q = components(overlay::clean_path(path));
  Node* cur = root();
  std::vector<Node*> up;
  int hops = 0;
  const std::string shown = "/" + overlay::clean_path(path);
  while (!q.empty()) {
    std::string c = std::move(q.front());
    q.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (!up.empty()) {
        cur = up.back();
        up.pop_back();
      }
      continue;
    }
    const bool last = q.empty();
    Found f = lookup(cur, c);
    if (last && !follow) return {cur, c, std::move(f)};
    if (f.exists && S_ISLNK(f.type)) {
      if (++hops > 40) throw_errno(verb, shown, ELOOP);
      std::deque<std::string> t = components(f.link_target);
      q.insert(q.begin(), t.begin(), t.end());
      if (!f.link_target.empty() && f.link_target[0] == '/') {
        cur = root();
        up.clear();
      }
      continue;
    }
    if (last) return {cur, c, std::move(f)};
    if (!f.exists) {
      if (!create) throw_errno(verb, shown, ENOENT);
      Node* d = new_dir(cur, c, uid, gid);
      up.push_back(cur);
      cur = d;
      continue;
    }
    if (!S_ISDIR(f.type)) throw_errno(verb, shown, ENOTDIR);
    up.push_back(cur);
    cur = f.node ? f.node : copy_up(cur, c, f.lst);
  }
  Found self;
  self.exists = true;
  self.type = S_IFDIR;
  self.node = cur;
  return {cur, "", std::move(self)};
}

LayerTree::Node* LayerTree::new_dir(Node* dir, const std::string& name, std::uint32_t uid, std::uint32_t gid) {
  auto n = std::make_unique<Node>();
  n->e.type = oci::TarType::Dir;
  n->e.mode = 0755 & ~umask_;
  n->e.uid = uid;
  n->e.gid = gid;
  n->e.mtime_sec = now_sec_;
  n->e.mtime_nsec = now_nsec_;
  return add_node(dir, name, std::move(n));
}

std::string LayerTree::resolve(const std::string& path) {
  return overlay::resolve_links(path, [this](const std::string& p) -> std::optional<std::string> {
    // p's parents are resolved already: the walk follows no link, and fails only where a
    // parent is missing or not a directory (then p is no link either).
    try {
      Walked w = walk(p, /*create=*/false, /*follow=*/false);
      if (w.f.exists && S_ISLNK(w.f.type)) return w.f.link_target;
    } catch (const Error&) {
    }
    return std::nullopt;
  });
}

bool LayerTree::is_dir(const std::string& path) {
  try {
    return S_ISDIR(walk(path, false, true).f.type);
  } catch (const Error&) {
    return false;
  }
}

// BuildKit's WORKDIR (fs.RootPath, then MkdirAll): symlinks on the way are followed inside the
// root, dangling ones included, and what is missing is made where they lead ("/wd/sub" with
// /wd -> /somewhere makes /somewhere/sub). A link never leads out: ".." stops at the root and
// an absolute target restarts at it.
void LayerTree::mkdir_owned(const std::string& path, std::uint32_t uid, std::uint32_t gid) {
  Walked w = walk(path, /*create=*/true, /*follow=*/true, uid, gid, "mkdir");
  if (w.leaf.empty()) return;  // the root, or a directory a link led to
  if (!w.f.exists) {
    new_dir(w.dir, w.leaf, uid, gid);
    return;
  }
  if (!S_ISDIR(w.f.type)) throw_errno("mkdir", "/" + overlay::clean_path(path), ENOTDIR);
}

CopyTarget::Entry LayerTree::at(const std::string& path) {
  auto w = std::make_unique<Walked>(walk(path, /*create=*/true, /*follow=*/false));
  Entry e{.exists = w->f.exists, .type = w->f.type};
  at_path_ = path;
  at_walk_ = std::move(w);
  return e;
}

// The landings of copy_rules.h, recorded as overlayfs would leave them in an upper: what the
// disk writer's syscalls would do to a merged view.
void LayerTree::land(const Landing& l) {
  if (l.op == Landing::Op::DirTime) {
    Walked w = walk(l.path, /*create=*/false, /*follow=*/false);
    if (w.leaf.empty() || !w.f.node) return;
    set_mtime(w.f.node->e, l.mtime);
    w.f.node->times_set = true;
    return;
  }
  std::unique_ptr<Walked> at_walk = std::move(at_walk_);
  Walked w = at_walk && at_path_ == l.path ? std::move(*at_walk) : walk(l.path, /*create=*/true, /*follow=*/false);
  // land_copy() refuses an entry landing on the root itself.
  if (w.leaf.empty()) throw Error(ErrorKind::Internal, "a landing on the root directory itself");
  // A change to what is there copies it up first.
  auto there = [&] {
    Node* n = w.f.node ? w.f.node : copy_up(w.dir, w.leaf, w.f.lst);
    make_upper(n, lower_);
    return n;
  };
  switch (l.op) {
    case Landing::Op::Mkdir: new_dir(w.dir, w.leaf, l.uid, l.gid)->e.mode = l.mode & ~umask_; return;
    case Landing::Op::ChmodDir: there()->e.mode = l.mode; return;
    case Landing::Op::ChownLink:
    case Landing::Op::IntoDir:
    case Landing::Op::Dir: {
      Node* d = l.op == Landing::Op::ChownLink || l.exists ? there() : new_dir(w.dir, w.leaf, l.uid, l.gid);
      d->e.uid = l.uid;
      d->e.gid = l.gid;
      if (l.op != Landing::Op::ChownLink) d->e.mode = l.mode;
      return;
    }
    default: break;
  }
  const CopyItem& it = *l.item;
  if (l.replace) remove(w.dir, w.leaf);
  if (l.op == Landing::Op::Remove) {
    // unlink(2) in a merged view: a name the lower holds gets overlayfs's whiteout, a 0/0
    // character device made by the mounter (root) at this time.
    if (w.dir->lower_backed && lower_stat(join(w.dir->path, w.leaf))) {
      auto n = std::make_unique<Node>();
      n->e.type = oci::TarType::Char;
      n->e.mtime_sec = now_sec_;
      n->e.mtime_nsec = now_nsec_;
      w.dir->has_whiteout_child = true;
      add_node(w.dir, w.leaf, std::move(n));
    }
    return;
  }
  auto n = std::make_unique<Node>();
  n->e.uid = l.uid;
  n->e.gid = l.gid;
  n->e.mode = l.mode;
  set_mtime(n->e, l.mtime);
  if (l.op == Landing::Op::Symlink) {
    n->e.type = oci::TarType::Symlink;
    n->e.link_target = it.link_target;
  } else if (l.op == Landing::Op::File || l.op == Landing::Op::Hardlink) {
    n->e.type = oci::TarType::File;
    n->e.size = it.st.st_size;
    n->stamp = FileStamp::of(it.st);
    n->src_root = l.src_root;
    n->src = it.src;
    if (l.capability) {
      UniqueFd in = overlay::open_in_root(l.src_root, it.src, O_RDONLY | O_NOFOLLOW);
      if (auto cap = overlay::sys::get_xattr(in.get(), "", std::string(overlay::kCapabilityXattr), it.src))
        n->e.xattrs.emplace_back(overlay::kCapabilityXattr, std::move(*cap));
    }
    if (l.op == Landing::Op::Hardlink) {
      // One inode for both names: the differ writes the first path it meets as the file.
      Node* first = walk(it.link_to, /*create=*/false, /*follow=*/false).f.node;
      if (!first || first->e.type != oci::TarType::File)
        throw Error(ErrorKind::Internal, "hardlink " + quote(l.path) + ": " + quote(it.link_to) + " was not copied");
      if (!first->link_group) first->link_group = ++link_groups_;
      n->link_group = first->link_group;
      n->e.xattrs = first->e.xattrs;  // the inode's: whichever name the differ meets first
    }
  } else {
    // EmptyFile: no source to read (src_root stays -1).
    n->e.type = oci::TarType::File;
    n->e.size = 0;
  }
  add_node(w.dir, w.leaf, std::move(n));
}

// One traversal for both writing and describing the layer, so the two cannot disagree on
// order or content. `out.entry(e)` takes a non-file entry, `out.file(e, node)` a regular file.
template <class Out>
void LayerTree::visit(Node& n, const std::string& name, Out& out) {
  if (!n.in_upper) return;
  check_cancelled();
  oci::TarEntry& e = n.e;
  e.path = n.path;
  if (e.type == oci::TarType::Char && e.dev_major == 0 && e.dev_minor == 0) {
    // The differ's whiteout conversion of a 0/0 character device.
    std::string dir = n.path.substr(0, n.path.size() - name.size());
    out.entry(overlay::whiteout_marker(e, dir + overlay::whiteout_entry_name(name)));
    return;
  }
  if (e.type == oci::TarType::Dir) {
    if (n.touched && !n.times_set) {
      e.mtime_sec = now_sec_;
      e.mtime_nsec = now_nsec_;
    }
    out.entry(e);
    visit_children(n, out);
    return;
  }
  if (e.type == oci::TarType::File) {
    if (n.link_group) {
      // The differ's view of a shared inode: the first path it meets holds the data.
      auto [first, inserted] = link_first_.emplace(n.link_group, n.path);
      if (!inserted) {
        oci::TarEntry h = e;
        h.type = oci::TarType::Hardlink;
        h.link_target = first->second;
        h.size = 0;
        h.xattrs.clear();  // as the differ writes a hardlink: base fields only
        out.entry(h);
        return;
      }
    }
    if (n.src_root < 0) {
      out.entry(e);  // an empty file a device node became
      return;
    }
    out.file(e, n);
  } else {
    out.entry(e);
  }
}

template <class Out>
void LayerTree::visit_children(Node& dir, Out& out) {
  if (!dir.has_whiteout_child) {
    for (auto& [name, child] : dir.children) visit(*child, name, out);
    return;
  }
  // The differ sorts by the name in the layer: a whiteout's is ".wh.NAME".
  std::vector<std::pair<std::string, std::pair<const std::string*, Node*>>> order;
  for (auto& [name, child] : dir.children) {
    bool wh = child->e.type == oci::TarType::Char && child->e.dev_major == 0 && child->e.dev_minor == 0;
    order.push_back({wh ? overlay::whiteout_entry_name(name) : name, {&name, child.get()}});
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [oci_name, c] : order) visit(*c.second, *c.first, out);
}

std::uint64_t LayerTree::write(oci::TarWriter& tar, const DigestOf& known) {
  struct Writer {
    LayerTree& t;
    oci::TarWriter& tar;
    const DigestOf& known;
    std::uint64_t count = 0;
    void entry(const oci::TarEntry& e) {
      tar.add(e);
      ++count;
    }
    void file(const oci::TarEntry& e, Node& n) {
      if (!t.files_ || t.files_root_ != n.src_root) {
        t.files_ = std::make_unique<SourceFiles>(n.src_root);
        t.files_root_ = n.src_root;
      }
      UniqueFd in = t.files_->open(n.src);
      std::optional<oci::Digest> content = known ? known(n.stamp) : std::nullopt;
      tar.add_file(e, in.get(), content ? &*content : nullptr);
      // What was read is what the plan saw only if the stat data still match afterwards.
      struct stat after {};
      if (::fstat(in.get(), &after) != 0 || !(FileStamp::of(after) == n.stamp)) {
        t.sources_changed_ = true;
        if (content)
          throw Error(ErrorKind::FailedPrecondition, "source file " + quote(n.src) + " changed while it was copied; build again");
      }
      ++count;
    }
  } w{*this, tar, known};
  link_first_.clear();
  visit_children(*root_, w);
  return w.count;
}

std::optional<oci::Digest> LayerTree::describe(const std::function<std::optional<oci::Digest>(const FileStamp&)>& digest_of) {
  struct Describer {
    const std::function<std::optional<oci::Digest>(const FileStamp&)>& digest_of;
    oci::Sha256 h;
    bool complete = true;
    void field(std::string_view s) {
      h.update(std::to_string(s.size()) + ":");
      h.update(s);
    }
    void entry(const oci::TarEntry& e) {
      field(e.path);
      field(std::to_string(static_cast<int>(e.type)) + " " + std::to_string(e.mode) + " " + std::to_string(e.uid) + " " +
            std::to_string(e.gid) + " " + std::to_string(e.size) + " " + std::to_string(e.mtime_sec) + "." +
            std::to_string(e.mtime_nsec) + " " + std::to_string(e.dev_major) + " " + std::to_string(e.dev_minor));
      field(e.uname);
      field(e.gname);
      field(e.link_target);
      field(std::to_string(e.xattrs.size()));
      for (const auto& [k, v] : e.xattrs) {
        field(k);
        field(v);
      }
    }
    void file(const oci::TarEntry& e, Node& n) {
      entry(e);
      std::optional<oci::Digest> d = n.src_root >= 0 ? digest_of(n.stamp) : std::nullopt;
      if (!d) {
        complete = false;
        return;
      }
      field(d->str());
    }
  } d{digest_of, {}, true};
  link_first_.clear();
  visit_children(*root_, d);
  if (!d.complete) return std::nullopt;
  return d.h.finish();
}

}  // namespace cbuild::builder
