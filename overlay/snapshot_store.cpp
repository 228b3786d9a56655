#include "overlay/snapshot_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"

namespace cbuild::overlay {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxDepth = 4096;  // parent links followed before a loop is assumed

std::atomic<unsigned> g_counter{0};

UniqueFd open_lock(const fs::path& dir) {
  return open_file(dir / "lock", O_RDWR | O_CREAT, 0644);
}

std::optional<oci::Digest> read_parent(const fs::path& dir) {
  auto text = read_file_if_exists(dir / "parent", 1024);
  if (!text) return std::nullopt;
  while (!text->empty() && (text->back() == '\n' || text->back() == ' ')) text->pop_back();
  return oci::Digest::parse(*text, "snapshot parent in " + quote((dir / "parent").string()));
}

}  // namespace

oci::Digest chain_id(const std::optional<oci::Digest>& parent_chain, const oci::Digest& diff_id) {
  if (!parent_chain) return diff_id;
  return oci::Digest::of(parent_chain->str() + " " + diff_id.str());
}

std::vector<oci::Digest> chain_ids(const std::vector<oci::Digest>& diff_ids) {
  std::vector<oci::Digest> out;
  std::optional<oci::Digest> prev;
  for (const auto& d : diff_ids) {
    prev = chain_id(prev, d);
    out.push_back(*prev);
  }
  return out;
}

PreparedSnapshot::~PreparedSnapshot() {
  if (scratch_.empty()) return;
  try {
    remove_tree(scratch_);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cbuild: warning: removing %s: %s\n", scratch_.c_str(), e.what());
  }
}

SnapshotStore::SnapshotStore(fs::path store_root)
    : root_(store_root / "snapshots"), mounts_(store_root / "mounts") {
  make_dirs(root_ / ".tmp");
  check_xattr_namespace();
  if (overlay_xattr_namespace() == XattrNamespace::User) record_setid_files();
}

// Rootless snapshots made before set-id files carried records with an mtime (override_stat.h)
// would lose those files' bits to a later write, as before; they get the records once, the
// first time this version opens the store. A snapshot pruned meanwhile is skipped.
void SnapshotStore::record_setid_files() const {
  fs::path marker = root_ / ".setid-records";  // dot: not a snapshot to those who list them
  if (fs::exists(marker)) return;
  for (const auto& e : fs::directory_iterator(root_)) {
    if (e.path().filename().string()[0] == '.') continue;
    try {
      renew_setid_records(e.path() / "fs");
    } catch (const Error& err) {
      if (err.sys_errno() != ENOENT) throw Error(err).with_context("recording setid files of snapshot " + e.path().string());
    }
  }
  write_file_atomic(marker, "1\n", 0644, Durability::RenameOnly);
}

// Opaque directories are marked in the namespace of whoever made the snapshot; overlay in the
// other namespace would not see the marks, and lower layers would show through. A store made
// before the marker existed was made by root.
void SnapshotStore::check_xattr_namespace() const {
  const std::string mine = overlay_xattr_namespace() == XattrNamespace::User ? "user" : "trusted";
  fs::path marker = root_ / ".xattrs";  // dot: not a snapshot to those who list them
  std::optional<std::string> recorded = read_file_if_exists(marker, 64);
  if (!recorded) {
    bool any = false;
    for (const auto& e : fs::directory_iterator(root_)) any |= e.path().filename().string()[0] != '.';
    if (any) recorded = "trusted";
    else write_file_atomic(marker, mine, 0644, Durability::RenameOnly);
  }
  while (recorded && !recorded->empty() && recorded->back() == '\n') recorded->pop_back();
  if (!recorded || *recorded == mine) return;
  std::string made_by = *recorded == "user" ? "a rootless cbuild (user.overlay xattrs)"
                                            : "cbuild as root (trusted.overlay xattrs)";
  throw Error(ErrorKind::FailedPrecondition,
              "store " + quote(root_.parent_path().string()) + ": its snapshots were made by " + made_by +
                  " and cannot be stacked by " + (mine == "user" ? "a rootless one" : "one running as root") +
                  "; use another --root");
}

fs::path SnapshotStore::snap_dir(const oci::Digest& chain) const { return root_ / chain.hex(); }
fs::path SnapshotStore::fs_dir(const oci::Digest& chain) const { return snap_dir(chain) / "fs"; }

bool SnapshotStore::has(const oci::Digest& chain) const {
  struct stat st {};
  return ::stat(fs_dir(chain).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> SnapshotStore::lowers(const oci::Digest& chain) const {
  std::vector<std::string> out;
  std::optional<oci::Digest> cur = chain;
  while (cur) {
    if (!has(*cur)) throw Error(ErrorKind::NotFound, "snapshot " + cur->str() + " does not exist");
    if (out.size() >= kMaxDepth) throw Error(ErrorKind::DataLoss, "snapshot " + chain.str() + ": parent links loop");
    out.push_back(fs_dir(*cur).string());
    cur = read_parent(snap_dir(*cur));
  }
  return out;
}

std::vector<UniqueFd> SnapshotStore::lock_stack(const oci::Digest& chain) const {
  std::vector<UniqueFd> locks;
  std::optional<oci::Digest> cur = chain;
  while (cur && locks.size() < kMaxDepth) {
    UniqueFd fd = open_lock(snap_dir(*cur));
    while (::flock(fd.get(), LOCK_SH) != 0)
      if (errno != EINTR) throw_errno("flock", (snap_dir(*cur) / "lock").string());
    locks.push_back(std::move(fd));
    cur = read_parent(snap_dir(*cur));
  }
  return locks;
}

fs::path SnapshotStore::new_scratch(std::string_view kind) const {
  // The owner stamp (owner.h): the next store opener reclaims the scratch of a dead process, and
  // never a live one's, even when the dead one's pid was reused.
  fs::path p = root_ / ".tmp" / (std::string(kind) + "-" + OwnerStamp::self().str() + "-" + std::to_string(g_counter++));
  if (::mkdir(p.c_str(), 0700) != 0) throw_errno("mkdir", p.string());
  return p;
}

void SnapshotStore::install(const fs::path& staging, const oci::Digest& chain,
                            const std::optional<oci::Digest>& parent, bool& created) {
  // staging is private until the rename: the parent file needs its data synced, and one
  // directory sync covers both new names (write_file_atomic would sync the directory twice).
  if (parent) {
    write_new_file(staging / "parent", parent->str() + "\n");
    UniqueFd fd = open_file(staging / "parent", O_RDONLY);
    fsync_fd(fd.get(), (staging / "parent").string());
  }
  { UniqueFd lock = open_lock(staging); }
  fsync_dir(staging);
  if (::rename(staging.c_str(), snap_dir(chain).c_str()) == 0) {
    fsync_dir(root_);
    created = true;
    return;
  }
  if (errno != EEXIST && errno != ENOTEMPTY) throw_errno("rename", snap_dir(chain).string());
  created = false;  // another builder made it first: theirs is as good as ours
  remove_tree(staging);
}

bool SnapshotStore::ensure_with(const oci::Digest& chain, const std::optional<oci::Digest>& parent,
                                const std::function<void(const fs::path&)>& fill) {
  if (has(chain)) return false;
  KeyedMutex::Guard creating = creating_.lock(chain.hex());
  if (has(chain)) return false;  // another thread made it while this one waited
  if (parent && !has(*parent))
    throw Error(ErrorKind::NotFound, "snapshot " + chain.str() + ": parent " + parent->str() + " does not exist");
  fs::path staging = new_scratch("new");
  try {
    make_dirs(staging / "fs");
    fill(staging / "fs");
    bool created = false;
    install(staging, chain, parent, created);
    return created;
  } catch (...) {
    try {
      remove_tree(staging);
    } catch (...) {
    }
    throw;
  }
}

bool SnapshotStore::ensure(const oci::Digest& chain, const std::optional<oci::Digest>& parent,
                           oci::TarReader& reader, ApplyOptions options) {
  options.mode = ApplyMode::Overlay;
  return ensure_with(chain, parent, [&](const fs::path& dir) {
    try {
      apply_layer(reader, dir, options);
    } catch (Error& e) {
      throw e.with_context("unpacking snapshot " + chain.str());
    }
  });
}

PreparedSnapshot SnapshotStore::prepare(const std::optional<oci::Digest>& parent) {
  PreparedSnapshot p;
  if (parent) p.locks_ = lock_stack(*parent);
  p.scratch_ = new_scratch("active");
  p.parent_ = parent;
  make_dirs(p.scratch_ / "upper");
  make_dirs(p.scratch_ / "work");
  if (parent) {
    p.spec_.lowers = lowers(*parent);
  } else {
    make_dirs(p.scratch_ / "empty");  // overlayfs needs a lower even for FROM scratch
    p.spec_.lowers = {(p.scratch_ / "empty").string()};
  }
  p.spec_.upper = (p.scratch_ / "upper").string();
  p.spec_.work = (p.scratch_ / "work").string();
  // Unmounting a non-volatile overlay syncs the whole upper filesystem (every other writer's
  // dirty data too: tens of ms on a busy disk) for no guarantee cbuild relies on: a step's
  // layer blob is fsynced on its own, and snapshot contents are never fsynced file by file
  // (applied layers are not either), so a snapshot is as durable as before. The work dir,
  // where overlay marks a volatile mount, is removed with the scratch dir.
  p.spec_.extra_options.push_back(kVolatileOption);
  return p;
}

PreparedSnapshot SnapshotStore::view(const oci::Digest& chain) {
  PreparedSnapshot p;
  p.locks_ = lock_stack(chain);
  p.scratch_ = new_scratch("view");
  p.parent_ = chain;
  p.spec_.lowers = lowers(chain);
  if (p.spec_.lowers.size() == 1) {
    // overlayfs wants two lowers for a read-only mount; an empty one changes nothing.
    make_dirs(p.scratch_ / "empty");
    p.spec_.lowers.push_back((p.scratch_ / "empty").string());
  }
  return p;
}

bool SnapshotStore::commit(PreparedSnapshot& prepared, const oci::Digest& chain, const DiffOptions& strip) {
  if (prepared.spec_.upper.empty())
    throw Error(ErrorKind::InvalidArgument, "snapshot commit: " + chain.str() + " comes from a read-only view");
  KeyedMutex::Guard creating = creating_.lock(chain.hex());
  if (has(chain)) return false;  // the upper is discarded with `prepared`
  fs::path upper = prepared.spec_.upper;
  strip_for_commit(upper, strip);
  fs::path staging = new_scratch("commit");
  if (::rename(upper.c_str(), (staging / "fs").c_str()) != 0) throw_errno("rename", upper.string());
  prepared.spec_.upper.clear();
  bool created = false;
  install(staging, chain, prepared.parent_, created);
  return created;
}

namespace {
void check_pin_name(const std::string& name) {
  bool ok = !name.empty() && name[0] != '.' && name.size() <= 128;
  for (char c : name) ok &= std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  if (!ok) throw Error(ErrorKind::InvalidArgument, "mount name " + quote(name) + " is not [A-Za-z0-9_.-]+");
}
}  // namespace

fs::path SnapshotStore::pin_dir(const std::string& name) const {
  check_pin_name(name);
  return mounts_ / name;
}

SnapshotStore::Pin SnapshotStore::pin(const oci::Digest& chain, const std::string& name) {
  fs::path dir = pin_dir(name);
  Pin p;
  p.spec.lowers = lowers(chain);
  make_dirs(dir / "merged");
  if (p.spec.lowers.size() == 1) {
    make_dirs(dir / "empty");
    p.spec.lowers.push_back((dir / "empty").string());
  }
  write_file_atomic(dir / "chain", chain.str() + "\n");
  p.target = dir / "merged";
  return p;
}

std::optional<oci::Digest> SnapshotStore::pinned(const std::string& name) const {
  auto text = read_file_if_exists(pin_dir(name) / "chain", 1024);
  if (!text) return std::nullopt;
  while (!text->empty() && text->back() == '\n') text->pop_back();
  return oci::Digest::try_parse(*text);
}

void SnapshotStore::unpin(const std::string& name) { remove_tree(pin_dir(name)); }

std::vector<std::string> SnapshotStore::pins() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(mounts_, ec)) out.push_back(d.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<oci::Digest> SnapshotStore::list() const {
  std::vector<oci::Digest> out;
  for (const auto& d : fs::directory_iterator(root_)) {
    std::string name = d.path().filename();
    if (name.size() != 64) continue;
    if (auto dg = oci::Digest::try_parse("sha256:" + name)) out.push_back(*dg);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t SnapshotStore::prune(const std::set<oci::Digest>& keep_in) {
  std::set<oci::Digest> keep = keep_in;
  // Pinned views (cbuild mount) outlive their process: keep their whole stacks.
  for (const auto& name : pins()) {
    std::optional<oci::Digest> cur;
    try {
      cur = pinned(name);
    } catch (const Error&) {
      continue;
    }
    for (int depth = 0; cur && depth < kMaxDepth && keep.insert(*cur).second; ++depth)
      cur = has(*cur) ? read_parent(snap_dir(*cur)) : std::nullopt;
  }
  std::size_t removed = 0;
  for (const auto& chain : list()) {
    if (keep.count(chain)) continue;
    UniqueFd lock = open_lock(snap_dir(chain));
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;  // mounted by someone
    // Rename first so a half-removed snapshot is never visible under its chain ID.
    fs::path doomed = new_scratch("prune");
    ::rmdir(doomed.c_str());
    if (::rename(snap_dir(chain).c_str(), doomed.c_str()) != 0) continue;
    remove_tree(doomed);
    ++removed;
  }
  // Scratch dirs whose creating process is gone (a crash mid-build), mounts in them detached.
  reclaim_dead_entries(root_ / ".tmp");
  // Older versions named them "<kind>-<pid>-<counter>": judged by the pid alone, as they were.
  for (const auto& d : fs::directory_iterator(root_ / ".tmp")) {
    std::string name = d.path().filename();
    auto a = name.find('-'), b = name.rfind('-');
    if (a == std::string::npos || b == a || stamp_in_name(name)) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(name.substr(a + 1, b - a - 1).c_str()));
    if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) remove_tree(d.path());
  }
  return removed;
}

}  // namespace cbuild::overlay
