// plan_copy(): which source entries a COPY/ADD reads and where each lands (copy_files.h).
// Nothing here writes; apply_copy() and content_key() in copy_files.cpp consume the plan.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "builder/plan/exec_plan.h"
#include "builder/steps/copy_files.h"
#include "builder/context/dockerignore.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/override_stat.h"
#include "overlay/safe_path.h"
#include "overlay/user_namespace.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::builder {

namespace {

constexpr std::size_t kAnyDepth = std::numeric_limits<std::size_t>::max();

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
  for (const auto& name : overlay::sys::list_dir(dir.get(), prefix)) {
    if (!match_component(c, name)) continue;
    std::string p = join(prefix, name);
    if (spec.excluded && spec.excluded(p)) continue;
    expand(root, comps, i + 1, p, spec, out);
  }
}

std::string read_link_at(int dir_fd, const std::string& name, const std::string& shown) {
  std::array<char, 4096> buf{};
  ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf.data(), buf.size() - 1);
  if (n < 0) throw_errno("readlink", shown);
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

// An entry of `dir_fd` as a copy item (not followed), or nullopt when it does not exist.
std::optional<CopyItem> entry_at(int dir_fd, const std::string& name, const std::string& src, const std::string& dest) {
  CopyItem item;
  item.src = src;
  item.dest = dest;
  if (::fstatat(dir_fd, name.c_str(), &item.st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("stat", src);
  }
  if (S_ISLNK(item.st.st_mode)) item.link_target = read_link_at(dir_fd, name, src);
  return item;
}

// --exclude and --parents patterns use .dockerignore's matcher (moby/patternmatcher). Those
// patterns come from flags, not from a file: a leading '#' is not a comment and a leading '!'
// of a --parents source is not an exception, so both are escaped ("\#" matches "#").
DockerIgnore compile_patterns(const std::vector<std::string>& patterns, std::string_view what, bool escape_bang) {
  std::string text;
  for (std::string p : patterns) {
    if (!p.empty() && (p[0] == '#' || (escape_bang && p[0] == '!'))) p = "\\" + p;
    text += p + "\n";
  }
  return DockerIgnore::parse(text, what, DockerIgnore::Syntax::Flag);
}

// Walks source directories into a plan, applying .dockerignore (paths relative to the source
// root) and --exclude (paths relative to the source being copied). Directories that are
// copied only as the way to something below them wait on a stack and are added just before
// the first entry below them that is.
class Selector {
 public:
  Selector(int root, const CopySpec& spec, const DockerIgnore* exclude, CopyPlan& plan)
      : root_(root), spec_(spec), exclude_(exclude), plan_(plan) {}

  void emit(CopyItem item) {
    for (auto& p : pending_)
      if (!p.second) {
        p.second = true;
        plan_.items.push_back(p.first);
      }
    plan_.items.push_back(std::move(item));
  }
  void push_parent(CopyItem dir) {
    dir.lazy_parent = true;
    pending_.emplace_back(std::move(dir), false);
  }
  void pop_parent() { pending_.pop_back(); }

  bool ignored(const std::string& src) const { return spec_.excluded && spec_.excluded(src); }
  bool excluded(const std::string& rel) const { return exclude_ && exclude_->excluded(rel); }
  // An excluded directory can still hold kept entries only when there are `!` exceptions.
  bool search_excluded() const { return exclude_ && exclude_->has_exceptions(); }

  // Adds everything inside the source directory `src` (resolved, root-relative) below `dest`;
  // `rel` is `src` relative to where the --exclude patterns are anchored.
  void contents(const std::string& src, const std::string& rel, const std::string& dest) {
    for_each_child(src, rel, dest, [&](CopyItem item, const std::string& r) { add(std::move(item), r); });
  }

  // --parents: the entries below `src` whose path relative to the pivot (`rel`) matches
  // `pattern` (or has a matching parent), each copied with that path below `dest`. `depth`
  // bounds how deep a match can start (kAnyDepth with "**"). Returns how many matched.
  std::size_t matching(const std::string& src, const std::string& rel, const std::string& dest,
                       const DockerIgnore& pattern, std::size_t depth) {
    std::size_t matched = 0;
    for_each_child(src, rel, dest, [&](CopyItem item, const std::string& r) {
      if (pattern.excluded(r)) {  // "excluded" is the matcher's word for "matches"
        ++matched;
        add(std::move(item), r);
      } else if (S_ISDIR(item.st.st_mode) && depth > 1 && (!excluded(r) || search_excluded())) {
        std::string s = item.src, d = item.dest;
        push_parent(std::move(item));
        matched += matching(s, r, d, pattern, depth == kAnyDepth ? depth : depth - 1);
        pop_parent();
      }
    });
    return matched;
  }

  // One selected entry (`rel` to the --exclude anchor) and, for a directory, what it holds.
  void add(CopyItem item, const std::string& rel) {
    bool is_dir = S_ISDIR(item.st.st_mode);
    std::string s = item.src, d = item.dest;
    if (excluded(rel)) {
      if (!is_dir || !search_excluded()) return;
      push_parent(std::move(item));
      contents(s, rel, d);
      pop_parent();
      return;
    }
    emit(std::move(item));
    if (is_dir) contents(s, rel, d);
  }

 private:
  // Calls fn(item, rel) for each entry of the source directory `src` that COPY can take: not
  // .dockerignore'd, still there (what a fifo or a socket becomes is copy_rules.h's). `rel` is
  // the entry's path relative to where the --exclude patterns are anchored.
  template <typename Fn>
  void for_each_child(const std::string& src, const std::string& rel, const std::string& dest, Fn&& fn) {
    UniqueFd dir = overlay::open_in_root(root_, src.empty() ? "." : src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    for (const auto& name : overlay::sys::list_dir(dir.get(), src)) {
      check_cancelled();
      std::string s = join(src, name);
      if (ignored(s)) continue;
      std::optional<CopyItem> item = entry_at(dir.get(), name, s, join(dest, name));
      if (!item) continue;
      fn(std::move(*item), join(rel, name));
    }
  }

  int root_;
  const CopySpec& spec_;
  const DockerIgnore* exclude_;
  CopyPlan& plan_;
  std::vector<std::pair<CopyItem, bool>> pending_;  // lazily created parents; true once added
};

// Resolves `path` (root-relative, symlinks followed inside the root) to its real path and stat.
std::optional<std::pair<std::string, struct stat>> resolve(int root, const std::string& path) {
  UniqueFd fd;
  try {
    fd = overlay::open_in_root(root, path.empty() ? "." : path, O_PATH);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound) return std::nullopt;
    throw;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("stat", path);
  return std::pair{overlay::path_in_root(root, fd.get(), "resolved source"), st};
}

// The paths a source names: the wildcard matches of `cleaned`, or `cleaned` itself unless
// .dockerignore excludes it. `raw` is the source as written, for messages. A wildcard that
// matches nothing names nothing, as in BuildKit (`COPY package.json yarn.lock* ./`), when the
// directory it searches exists; when that directory is missing, or `allow_none` is false, it is
// an error.
std::vector<std::string> match_source(int root, const std::string& raw, const std::string& cleaned,
                                      const CopySpec& spec, Selector& sel, bool allow_none) {
  std::vector<std::string> matches;
  if (has_wildcard(cleaned)) {
    std::vector<std::string> comps = split(cleaned);
    expand(root, comps, 0, "", spec, matches);
    if (matches.empty()) {
      std::string dir;  // the literal directories before the first wildcard
      for (std::size_t i = 0; i < comps.size() && !has_wildcard(comps[i]); ++i) dir = join(dir, comps[i]);
      bool searched = false;  // the directory exists (and .dockerignore keeps it)
      if (dir.empty() || !spec.excluded || !spec.excluded(dir)) {
        auto r = resolve(root, dir);
        searched = r && S_ISDIR(r->second.st_mode);
      }
      if (!searched)
        throw Error(ErrorKind::NotFound, "source " + quote(raw) + ": directory " + quote(dir) + " not found");
      if (!allow_none) throw Error(ErrorKind::NotFound, "source " + quote(raw) + " matches no file");
    }
  } else {
    if (!cleaned.empty() && sel.ignored(cleaned))
      throw Error(ErrorKind::NotFound, "source " + quote(raw) + " not found (it is excluded by .dockerignore)");
    matches.push_back(cleaned);
  }
  return matches;
}

// COPY --parents of one source: BuildKit splits it at the first "/./" into the directory the
// copy starts from (the pivot; the source root without one) and an include pattern below it.
void plan_parents_source(int root, const std::string& raw, const std::string& dest, const CopySpec& spec,
                         Selector& sel) {
  auto cut = raw.find("/./");
  std::string base = overlay::clean_path(cut == std::string::npos ? std::string() : raw.substr(0, cut));
  std::string pattern = overlay::clean_path(cut == std::string::npos ? raw : raw.substr(cut + 3));
  std::vector<std::string> pivots = match_source(root, raw, base, spec, sel, /*allow_none=*/false);
  std::vector<std::string> comps = split(pattern);
  std::size_t first_wild = 0;
  while (first_wild < comps.size() && !has_wildcard(comps[first_wild])) ++first_wild;
  const bool literal = first_wild == comps.size();
  std::optional<DockerIgnore> matcher;
  if (!literal) matcher = compile_patterns({pattern}, "--parents", /*escape_bang=*/true);
  const bool deep = pattern.find("**") != std::string::npos;

  for (const auto& pivot : pivots) {
    auto resolved = resolve(root, pivot);
    if (!resolved) throw Error(ErrorKind::NotFound, "source " + quote(raw) + " not found");
    if (!S_ISDIR(resolved->second.st_mode))
      throw Error(ErrorKind::InvalidArgument, "source " + quote(raw) + ": " + quote(pivot) + " is not a directory");
    if (comps.empty()) {  // "x/./": everything in the pivot
      sel.contents(resolved->first, "", dest);
      continue;
    }
    // The directories named literally before the last component or the first wildcard.
    std::string src = resolved->first, rel, d = dest;
    std::size_t pushed = 0;
    bool reachable = true;   // every directory on the way exists
    bool excluded = false;   // one of them is --exclude'd (nothing below it is copied)
    for (std::size_t i = 0; i < (literal ? comps.size() - 1 : first_wild); ++i) {
      std::string r = join(rel, comps[i]);
      auto dir = sel.ignored(join(src, comps[i])) ? std::nullopt : resolve(root, join(src, comps[i]));
      if (!dir || !S_ISDIR(dir->second.st_mode)) {
        reachable = false;
        break;
      }
      if (sel.excluded(r) && !sel.search_excluded()) {
        excluded = true;
        break;
      }
      CopyItem item;
      item.src = dir->first;
      item.dest = join(d, comps[i]);
      item.st = dir->second;
      src = dir->first;
      rel = r;
      d = item.dest;
      sel.push_parent(std::move(item));
      ++pushed;
    }
    if (excluded) {
      // Everything it names is --exclude'd: nothing to copy, and nothing missing either.
    } else if (literal) {
      // BuildKit requires a source without wildcards to exist ("RequiredPaths").
      const std::string& name = comps.back();
      std::string s = join(src, name);
      if (reachable && sel.ignored(s))
        throw Error(ErrorKind::NotFound, "source " + quote(raw) + " not found (it is excluded by .dockerignore)");
      std::optional<CopyItem> item;
      if (reachable) {
        UniqueFd dir = overlay::open_in_root(root, src.empty() ? "." : src, O_RDONLY | O_DIRECTORY);
        item = entry_at(dir.get(), name, s, join(d, name));
      }
      if (!item) throw Error(ErrorKind::NotFound, "source " + quote(raw) + " not found");
      sel.add(std::move(*item), join(rel, name));
    } else {
      std::size_t depth = deep ? kAnyDepth : comps.size() - first_wild;
      if (!reachable || sel.matching(src, rel, d, *matcher, depth) == 0)
        throw Error(ErrorKind::NotFound, "source " + quote(raw) + " matches no file");
    }
    for (; pushed > 0; --pushed) sel.pop_parent();
  }
}

// Sets link_to on the regular files from `first` on that share an inode with an earlier one:
// the items one source (fsutil's copier) produced.
void link_hardlinks(CopyPlan& plan, std::size_t first) {
  std::map<std::pair<dev_t, ino_t>, std::string> seen;
  for (std::size_t i = first; i < plan.items.size(); ++i) {
    CopyItem& it = plan.items[i];
    if (!S_ISREG(it.st.st_mode) || it.st.st_nlink < 2) continue;
    auto [at, inserted] = seen.emplace(std::pair{it.st.st_dev, it.st.st_ino}, it.dest);
    if (!inserted) it.link_to = at->second;
  }
}

// A source in a rootless snapshot may be a placeholder (overlay/override_stat.h): it is
// copied as what it stands for — the device node, the owner outside the mapping.
void read_overrides(int src_root, CopyPlan& plan) {
  const std::string key(overlay::kOverrideStatXattr);
  for (auto& it : plan.items) {
    if (it.src.empty() || !(S_ISREG(it.st.st_mode) || S_ISDIR(it.st.st_mode))) continue;
    auto v = overlay::sys::get_xattr(src_root, it.src.empty() ? "." : it.src, key, it.src);
    if (!v) continue;
    it.st = overlay::apply_override(it.st, overlay::parse_override_stat_or_throw(*v, it.src), it.src);
    if (!S_ISREG(it.st.st_mode)) it.link_to.clear();
  }
}

void add_dir_chain(const std::string& path, bool include_self, std::set<std::string>& seen,
                   std::vector<std::string>& out) {
  auto comps = split(path);
  std::string p;
  for (std::size_t i = 0; i < comps.size(); ++i) {
    if (i + 1 == comps.size() && !include_self) break;
    p = join(p, comps[i]);
    if (seen.insert(p).second) out.push_back(p);
  }
}

}  // namespace

std::vector<std::string> expand_source(int src_root, const std::string& source, const CopySpec& spec) {
  std::vector<std::string> out;
  expand(src_root, split(overlay::clean_path(source)), 0, "", spec, out);
  return out;
}

CopyPlan plan_copy(int src_root, const CopySpec& spec, const std::function<bool(const std::string&)>& dest_is_dir) {
  if (spec.sources.empty()) throw Error(ErrorKind::InvalidArgument, "COPY: no source files were specified");
  std::optional<DockerIgnore> exclude;
  if (!spec.exclude.empty()) exclude = compile_patterns(spec.exclude, "--exclude", /*escape_bang=*/false);
  CopyPlan plan;
  Selector sel(src_root, spec, exclude ? &*exclude : nullptr, plan);
  std::string dest = overlay::clean_path(spec.dest);
  std::set<std::string> parents_seen;

  if (spec.parents) {
    // Every source lands below the destination, which is therefore a directory (created even
    // when everything is excluded, as BuildKit's copy of a directory's contents does).
    for (const auto& raw : spec.sources) {
      std::size_t first = plan.items.size();
      plan_parents_source(src_root, raw, dest, spec, sel);
      link_hardlinks(plan, first);
    }
    add_dir_chain(dest, /*include_self=*/true, parents_seen, plan.parents);
  } else {
    // Resolve every source first: the destination rule depends on how many there are.
    struct Resolved {
      std::string name;      // the matched path (its last component names a copied file)
      std::string resolved;  // after following a top-level symlink, inside the root
      struct stat st {};
    };
    std::vector<Resolved> srcs;
    for (const auto& raw : spec.sources) {
      std::string cleaned = overlay::clean_path(raw);
      std::vector<std::string> matches = match_source(src_root, raw, cleaned, spec, sel, /*allow_none=*/true);
      for (auto& m : matches) {
        auto r = resolve(src_root, m);
        if (!r) throw Error(ErrorKind::NotFound, "source " + quote(raw) + " not found");
        srcs.push_back(Resolved{.name = m, .resolved = r->first, .st = r->second});
      }
    }

    bool dest_dir = dest_names_directory(spec.dest) || dest.empty();
    if (srcs.size() > 1 && !dest_dir)
      throw Error(ErrorKind::InvalidArgument,
                  "when copying several sources the destination must be a directory and end with a /: " +
                      quote(spec.dest));
    if (!dest_dir && !dest.empty()) {
      plan.dest_probe = dest;
      if (dest_is_dir && dest_is_dir(dest)) dest_dir = true;
    }

    for (const auto& r : srcs) {
      std::size_t first = plan.items.size();
      if (S_ISDIR(r.st.st_mode)) {
        if (!dest.empty()) {
          CopyItem top;
          top.src = r.resolved;
          top.dest = dest;
          top.st = r.st;
          top.into = true;
          plan.items.push_back(std::move(top));
        }
        // --exclude patterns are anchored at each source (each match of a wildcard).
        sel.contents(r.resolved, "", dest);
      } else {
        CopyItem item;
        item.src = r.resolved;
        item.dest = dest_dir ? join(dest, base_name(r.name.empty() ? r.resolved : r.name)) : dest;
        item.st = r.st;
        if (item.dest.empty()) throw Error(ErrorKind::InvalidArgument, "cannot copy a file onto the image root");
        plan.items.push_back(std::move(item));
      }
      link_hardlinks(plan, first);
    }
  }
  std::set<std::string> seen;
  // Only rootless snapshots hold placeholders; root builds pay nothing for them.
  if (spec.keep_owner && overlay::overlay_xattr_namespace() == overlay::XattrNamespace::User)
    read_overrides(src_root, plan);
  for (const auto& it : plan.items) seen.insert(it.dest);
  for (const auto& it : plan.items) add_dir_chain(it.dest, /*include_self=*/false, parents_seen, plan.parents);
  std::erase_if(plan.parents, [&](const std::string& p) { return seen.count(p) > 0; });
  return plan;
}

}  // namespace cbuild::builder
