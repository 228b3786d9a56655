#include "builder/steps/run_mounts.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <set>

#include "builder/steps/copy_files.h"
#include "oci/base/error.h"
#include "oci/base/owner.h"
#include "overlay/safe_path.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

struct RunMounts::Root {
  UniqueFd fd;        // O_RDONLY | O_DIRECTORY
  fs::path path;      // on the host, for messages and overlay lowers
  std::string where;  // "the build context", "stage \"src\"", "image \"x\""
  std::function<bool(const std::string&)> excluded;  // .dockerignore (context only)
};

namespace {

// plan_copy() reads wildcards; a bind source is a literal path.
std::string literal(const std::string& rel) {
  if (rel.empty()) return ".";
  if (rel.find_first_of("*?[") == std::string::npos) return rel;
  std::string out;
  for (char c : rel) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string absolute_target(const std::string& workdir, const std::string& target) {
  if (!target.empty() && target[0] == '/') return "/" + overlay::clean_path(target);
  return "/" + overlay::clean_path(workdir + "/" + target);
}

std::size_t depth(const std::string& target) {
  return static_cast<std::size_t>(std::count(target.begin(), target.end(), '/'));
}

struct Resolved {
  UniqueFd fd;      // O_PATH
  std::string rel;  // inside the root, symlinks resolved ("" for the root)
  struct stat st {};
};

// `source` inside the root: symlinks and ".." resolve inside it; an excluded path (before or
// after following links) is as missing as it is for COPY.
Resolved resolve(const RunMounts::Root& root, const std::string& source) {
  std::string cleaned = overlay::clean_path(source);
  auto not_found = [&](const char* why) {
    return Error(ErrorKind::NotFound, quote("/" + cleaned) + " not found in " + root.where + why);
  };
  if (root.excluded && !cleaned.empty() && root.excluded(cleaned)) throw not_found(" (it is excluded by .dockerignore)");
  Resolved r;
  try {
    r.fd = overlay::open_in_root(root.fd.get(), cleaned.empty() ? "." : cleaned, O_PATH);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::NotFound || e.sys_errno() == ENOTDIR) throw not_found("");
    throw;
  }
  r.rel = overlay::path_in_root(root.fd.get(), r.fd.get(), "resolved mount source");
  if (root.excluded && !r.rel.empty() && root.excluded(r.rel)) throw not_found(" (it is excluded by .dockerignore)");
  if (::fstat(r.fd.get(), &r.st) != 0) throw_errno("stat", "/" + cleaned);
  return r;
}


// The excluded entries below `dir_rel` (context-relative), as paths relative to `dir_rel`.
// Like COPY, an excluded directory is not looked into.
void find_excluded(int dir_fd, const std::string& dir_rel, const std::string& below,
                   const std::function<bool(const std::string&)>& excluded, std::vector<std::string>& out) {
  for (const auto& name : overlay::sys::list_dir(dir_fd, dir_rel)) {
    std::string rel = dir_rel.empty() ? name : dir_rel + "/" + name;
    std::string sub = below.empty() ? name : below + "/" + name;
    if (excluded(rel)) {
      out.push_back(sub);
      continue;
    }
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    UniqueFd child = open_at(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    find_excluded(child.get(), rel, sub, excluded, out);
  }
}

void copy_attributes(int src_fd, const fs::path& dst) {
  struct stat st {};
  if (::fstat(src_fd, &st) != 0) throw_errno("stat", dst.string());
  if (::lchown(dst.c_str(), st.st_uid, st.st_gid) != 0) throw_errno("chown", dst.string());
  if (::chmod(dst.c_str(), st.st_mode & 07777) != 0) throw_errno("chmod", dst.string());
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  ::utimensat(AT_FDCWD, dst.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

// A layer for overlayfs that hides `paths` (relative to the source `src`): a 0/0 character
// device per path, and the directories on the way with their source attributes, since the
// topmost layer's directory is the one a merged view shows.
void write_whiteouts(int src_fd, const std::vector<std::string>& paths, const fs::path& out) {
  make_dirs(out);
  std::set<std::string> dirs = {""};
  for (const auto& p : paths) {
    for (std::size_t s = p.find('/'); s != std::string::npos; s = p.find('/', s + 1)) {
      if (dirs.insert(p.substr(0, s)).second) make_dirs(out / p.substr(0, s));
    }
    fs::path wh = out / p;
    if (::mknod(wh.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) throw_errno("create whiteout", wh.string());
  }
  // Deepest first: setting a directory's times must come after its entries stopped changing.
  for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) {
    if (d->empty()) {
      copy_attributes(src_fd, out);
      continue;
    }
    UniqueFd s = overlay::open_in_root(src_fd, *d, O_PATH);
    copy_attributes(s.get(), out / *d);
  }
}

void set_env(std::vector<std::string>& env, const std::string& key, const std::string& value) {
  std::string prefix = key + "=";
  for (auto& kv : env)
    if (kv.rfind(prefix, 0) == 0) {
      kv = prefix + value;
      return;
    }
  env.push_back(prefix + value);
}

}  // namespace

RunMounts::RunMounts(std::vector<RunMount> mounts, StageEnv& env, std::string workdir)
    : mounts_(std::move(mounts)), env_(env), workdir_(std::move(workdir)) {}

RunMounts::~RunMounts() = default;

const ImageState& RunMounts::image(const std::string& ref) {
  if (auto it = images_.find(ref); it != images_.end()) return it->second;
  try {
    return images_.emplace(ref, env_.image(ref)).first->second;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Cancelled) throw;
    throw Error(e.kind(), "from=" + ref + " names no stage of this Dockerfile and no usable image: " + e.what(),
                e.sys_errno());
  }
}

// The identity of what a from= mount reads: the stage's or image's result key.
std::string RunMounts::source_key(const RunMount& m) {
  if (m.from_stage >= 0) return "stage " + env_.stage_result(m.from_stage).cache_key;
  return "image " + image(m.from_image).cache_key;
}

RunMounts::Root RunMounts::open_root(const RunMount& m) {
  Root r;
  if (m.from_stage < 0 && m.from_image.empty()) {
    r.path = env_.context;
    r.where = "the build context";
    r.excluded = env_.context_excluded;
  } else {
    const LayerStack& stack = m.from_stage >= 0 ? env_.stage_result(m.from_stage).stack : image(m.from_image).stack;
    views_.push_back(std::make_unique<StackView>(env_.fs, stack));
    r.path = views_.back()->root();
    r.where = m.from_stage >= 0 ? "stage " + std::to_string(m.from_stage) : "image " + quote(m.from_image);
  }
  r.fd = open_file(r.path, O_RDONLY | O_DIRECTORY);
  return r;
}

TempDir& RunMounts::scratch() {
  // Overlay uppers need a filesystem overlayfs accepts: the store's, like the snapshots'.
  fs::path tmp = env_.options.root.empty() ? fs::path() : fs::path(env_.options.root) / "tmp";
  std::error_code ec;
  if (!tmp.empty() && !fs::is_directory(tmp, ec)) tmp.clear();
  // Stamped with the owner, so the next store opener reclaims it (and what is mounted in it)
  // should this process die.
  scratch_.push_back(tmp.empty() ? std::make_unique<TempDir>(fs::path(), "mount-")
                                 : std::make_unique<TempDir>(tmp, "mount-" + OwnerStamp::self().str() + "-"));
  return *scratch_.back();
}

std::string RunMounts::key_inputs() {
  std::string out;
  for (std::size_t i = 0; i < mounts_.size(); ++i) {
    const RunMount& m = mounts_[i];
    try {
      bool from = m.from_stage >= 0 || !m.from_image.empty();
      if (m.type == RunMount::Type::Bind && !from) {
        Root root = open_root(m);
        Resolved r = resolve(root, m.source);
        // What the mount shows: content, modes, owners, links (not mtimes), after .dockerignore.
        CopySpec spec{.sources = {literal(r.rel)}, .dest = "/m", .keep_owner = true, .excluded = root.excluded};
        CopyPlan plan = plan_copy(root.fd.get(), spec, nullptr);
        out += "\nmount " + std::to_string(i) + " context " + content_key(root.fd.get(), plan, spec).str();
      } else if ((m.type == RunMount::Type::Bind || m.type == RunMount::Type::Cache) && from) {
        out += "\nmount " + std::to_string(i) + " " + source_key(m);
      }
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Cancelled) throw;
      throw Error(e.kind(), "--mount=" + m.text + ": " + e.what(), e.sys_errno());
    }
  }
  return out;
}

void RunMounts::attach(overlay::RunSpec& spec) {
  std::vector<std::size_t> order(mounts_.size());
  std::vector<std::string> targets(mounts_.size());
  for (std::size_t i = 0; i < mounts_.size(); ++i) {
    order[i] = i;
    if (!mounts_[i].target.empty()) targets[i] = absolute_target(workdir_, mounts_[i].target);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return depth(targets[a]) < depth(targets[b]); });
  for (std::size_t i : order) {
    const RunMount& m = mounts_[i];
    try {
      if (targets[i] == "/" && m.type != RunMount::Type::Secret)
        throw Error(ErrorKind::InvalidArgument, "cannot mount over the root directory");
      switch (m.type) {
        case RunMount::Type::Bind: attach_bind(m, targets[i], spec); break;
        case RunMount::Type::Cache: attach_cache(m, targets[i], spec); break;
        case RunMount::Type::Tmpfs: spec.tmpfs.push_back({.target = targets[i], .size_bytes = m.size}); break;
        case RunMount::Type::Secret: attach_secret(m, targets[i], spec); break;
      }
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Cancelled) throw;
      throw Error(e.kind(), "--mount=" + m.text + ": " + e.what(), e.sys_errno());
    }
  }
}

void RunMounts::attach_bind(const RunMount& m, const std::string& target, overlay::RunSpec& spec) {
  Root root = open_root(m);
  Resolved r = resolve(root, m.source);
  fs::path shown = r.rel.empty() ? root.path : root.path / r.rel;
  const bool writable = !m.readonly;
  if (!S_ISDIR(r.st.st_mode)) {
    if (!writable) {
      spec.binds.push_back({.source = shown, .target = target, .readonly = true, .source_fd = r.fd.get()});
      fds_.push_back(std::move(r.fd));
      return;
    }
    // A writable file: RUN edits a copy that goes away with the step.
    fs::path copy = scratch().path() / "file";
    UniqueFd in = overlay::open_in_root(root.fd.get(), r.rel, O_RDONLY | O_NOFOLLOW);
    UniqueFd out = open_file(copy, O_WRONLY | O_CREAT | O_EXCL, 0600);
    std::array<char, 65536> buf{};
    while (std::size_t n = read_full(in.get(), buf.data(), buf.size(), shown.string())) write_all(out.get(), buf.data(), n, copy.string());
    copy_attributes(in.get(), copy);
    spec.binds.push_back({.source = copy, .target = target, .readonly = false});
    return;
  }
  std::vector<std::string> hidden;
  if (root.excluded) {
    UniqueFd dir = overlay::open_in_root(root.fd.get(), r.rel.empty() ? "." : r.rel, O_RDONLY | O_DIRECTORY);
    find_excluded(dir.get(), r.rel, "", root.excluded, hidden);
  }
  if (!writable && hidden.empty()) {
    spec.binds.push_back({.source = shown, .target = target, .readonly = true, .source_fd = r.fd.get()});
    fds_.push_back(std::move(r.fd));
    return;
  }
  // An overlay over the source: a whiteout layer hides what .dockerignore excludes, and an
  // upper takes (and later drops) the writes of a rw mount.
  TempDir& tmp = scratch();
  overlay::MountSpec ms;
  if (!hidden.empty()) {
    write_whiteouts(r.fd.get(), hidden, tmp.path() / "hide");
    ms.lowers.push_back((tmp.path() / "hide").string());
  }
  ms.lowers.push_back("/proc/self/fd/" + std::to_string(r.fd.get()));
  if (writable) {
    make_dirs(tmp.path() / "upper");
    make_dirs(tmp.path() / "work");
    copy_attributes(r.fd.get(), tmp.path() / "upper");  // the upper's root is the one RUN sees
    ms.upper = (tmp.path() / "upper").string();
    ms.work = (tmp.path() / "work").string();
  }
  overlays_.push_back(std::make_unique<overlay::ActiveMount>(ms, tmp.path() / "merged"));
  spec.binds.push_back({.source = overlays_.back()->target(), .target = target, .readonly = !writable});
  fds_.push_back(std::move(r.fd));
}

void RunMounts::attach_cache(const RunMount& m, const std::string& target, overlay::RunSpec& spec) {
  CacheMountRequest req{.id = m.id,
                        .key = "id " + m.id,
                        .sharing = parse_sharing(m.sharing),
                        .mode = m.mode.value_or(0755),
                        .uid = m.uid.value_or(0),
                        .gid = m.gid.value_or(0)};
  std::function<void(const fs::path&)> init;
  if (m.from_stage >= 0 || !m.from_image.empty()) {
    // BuildKit keeps a seeded cache apart from an unseeded one of the same id.
    req.key += "\nfrom " + source_key(m) + "\nsource " + overlay::clean_path(m.source);
    init = [&](const fs::path& dir) {
      Root root = open_root(m);
      Resolved r = resolve(root, m.source);
      CopySpec cs{.sources = {literal(r.rel)}, .dest = "/", .keep_owner = true};
      UniqueFd dst = open_file(dir, O_RDONLY | O_DIRECTORY);
      apply_copy(root.fd.get(), dst.get(), plan_copy(root.fd.get(), cs, nullptr), cs);
      // Without mode/uid/gid the mount's root is the source directory itself.
      if (S_ISDIR(r.st.st_mode) && !m.mode && !m.uid && !m.gid) copy_attributes(r.fd.get(), dir);
    };
  }
  leases_.push_back(CacheMountStore(env_.options.root).acquire(req, init));
  spec.binds.push_back({.source = leases_.back().path(), .target = target, .readonly = m.readonly});
}

void RunMounts::attach_secret(const RunMount& m, const std::string& target, overlay::RunSpec& spec) {
  const SecretSpec* given = nullptr;
  for (const auto& s : env_.options.secrets)
    if (s.id == m.id) given = &s;  // the last --secret with the id wins
  std::optional<std::string> value;
  if (given && !given->src.empty()) {
    value = read_file_if_exists(given->src, overlay::kMaxSecretBytes);
    if (!value)
      throw Error(ErrorKind::NotFound, "--secret id=" + m.id + ": cannot read " + quote(given->src) + ": no such file");
  } else if (given) {
    if (const char* v = std::getenv(given->env.c_str())) value = v;
  }
  if (!value) {
    if (!m.required) return;  // BuildKit skips a secret nobody gave
    throw Error(ErrorKind::NotFound, "secret " + quote(m.id) + " is required but was not given (pass --secret id=" +
                                         m.id + ",src=FILE or --secret id=" + m.id + ",env=VAR)");
  }
  if (!m.target.empty())
    spec.secrets.push_back({.target = target,
                            .content = *value,
                            .mode = m.mode.value_or(0400),
                            .uid = m.uid.value_or(0),
                            .gid = m.gid.value_or(0)});
  if (!m.env.empty()) set_env(spec.env, m.env, *value);
}

}  // namespace cbuild::builder
