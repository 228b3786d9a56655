#include "builder/steps/copy_step.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>

#include "builder/steps/add_archive.h"
#include "builder/steps/copy_rules.h"
#include "builder/steps/disk_target.h"
#include "oci/base/error.h"
#include "overlay/safe_path.h"
#include "overlay/user_db.h"

namespace cbuild::builder {

namespace {

std::string q(const std::string& s) { return std::to_string(s.size()) + ":" + s; }

}  // namespace

CopyStep::CopyStep(const CopyOp& op, std::string dest, int src_root, CopyStepOptions options)
    : op_(op), dest_(std::move(dest)), src_root_(src_root), options_(std::move(options)) {
  spec_ = CopySpec{.sources = op.sources,
                   .dest = dest_,
                   .chmod = op.chmod,
                   .keep_owner = options_.keep_owner,
                   .excluded = options_.excluded,
                   .exclude = op.excludes,
                   .parents = op.parents};
  for (std::size_t i = 0; i < op.urls.size(); ++i)
    urls_.push_back(Url{.url = op.urls[i], .rel = std::to_string(i) + "/" + url_file_name(op.urls[i]), .fetched = {}});
}

bool CopyStep::owner_is_numeric(const std::string& chown) {
  auto colon = chown.find(':');
  std::string user = chown.substr(0, colon);
  std::string group = colon == std::string::npos ? "" : chown.substr(colon + 1);
  auto digits = [](const std::string& x) { return !x.empty() && x.find_first_not_of("0123456789") == std::string::npos; };
  return digits(user) && (colon == std::string::npos || digits(group));
}

void CopyStep::resolve_owner(const std::filesystem::path& rootfs) {
  owner_resolved_ = true;
  if (op_.chown.empty()) return;
  if (op_.chown.find(':') == std::string::npos && owner_is_numeric(op_.chown)) {
    // BuildKit's file op: a numeric user without a group is also the group (not passwd's).
    unsigned long long id = std::strtoull(op_.chown.c_str(), nullptr, 10);
    if (op_.chown.size() > 10 || id > 0xFFFFFFFFull)
      throw Error(ErrorKind::InvalidArgument, "--chown: user id " + op_.chown + " is out of range");
    spec_.uid = spec_.gid = static_cast<std::uint32_t>(id);
    return;
  }
  overlay::ExecUser u = overlay::resolve_user_in_rootfs(op_.chown, rootfs);
  spec_.uid = u.uid;
  spec_.gid = u.gid;
}

std::string CopyStep::owner() const {
  if (!spec_.uid) return "";
  return std::to_string(*spec_.uid) + ":" + std::to_string(spec_.gid.value_or(*spec_.uid));
}

void CopyStep::fetch_one(Url& u) {
  if (u.fetched) return;
  if (!options_.http) throw Error(ErrorKind::Internal, "ADD: no HTTP client for " + quote(u.url));
  if (!downloads_) downloads_.emplace();
  std::filesystem::path file = downloads_->path() / u.rel;
  std::filesystem::create_directories(file.parent_path());
  UrlFetchOptions o = options_.fetch;
  if (!op_.checksum.empty()) o.expected = oci::Digest::parse(op_.checksum, "--checksum");
  u.fetched = fetch_url(*options_.http, u.url, file, o);
}

std::string CopyStep::key_inputs() {
  // "links v1": the layer follows the image's symlinks at the destination (keys made before
  // name layers that replaced them).
  std::string out = "links v1\ndest " + q(dest_) + "\nowner " + q(owner()) + "\n";
  if (!spec_.sources.empty()) {
    // dest_is_dir is unknown here (it depends on the image); the chained key covers that.
    key_plan_ = plan_copy(src_root_, spec_, nullptr);
    out += "content " + content_key(src_root_, *key_plan_, spec_, options_.hashes).str() + "\n";
  }
  for (auto& u : urls_) {
    out += "url " + q(u.url) + " name " + q(u.rel);
    if (!op_.checksum.empty()) {
      // Pinned: the key is the checksum, so a cache hit needs no network (BuildKit too).
      out += " checksum " + op_.checksum + "\n";
      continue;
    }
    // Unpinned: docker fetches again and keys on what came back (content and mtime).
    fetch_one(u);
    out += " content " + u.fetched->digest.str() + " mtime " +
           (u.fetched->last_modified ? std::to_string(*u.fetched->last_modified) : "-") + "\n";
  }
  return out;
}

void CopyStep::fetch() {
  for (auto& u : urls_) fetch_one(u);
}

// BuildKit's unpack makes the destination with copy.MkdirAll(dest, 0755, chowner): every
// directory it creates on the way, the destination included, gets the --chown owner (0:0
// without one), as COPY's parents do. The archive's own entries keep their owners.
UniqueFd CopyStep::make_archive_dest(int dst, const std::string& dest) const {
  std::string cleaned = overlay::clean_path(dest);
  auto [uid, gid] = created_owner(spec_);
  for (std::size_t i = 0; i <= cleaned.size() && !cleaned.empty(); ++i) {
    if (i < cleaned.size() && cleaned[i] != '/') continue;
    auto pl = overlay::open_parent_in_root(dst, cleaned.substr(0, i), /*create_parents=*/false);
    struct stat st {};
    if (::fstatat(pl.dir.get(), pl.leaf.c_str(), &st, 0) == 0) continue;  // there (through links)
    if (::mkdirat(pl.dir.get(), pl.leaf.c_str(), 0755) != 0) {
      if (errno == EEXIST) break;  // a dangling symlink: mkdir_in_root creates its target
      throw_errno("mkdir", "/" + cleaned.substr(0, i));
    }
    if (::fchownat(pl.dir.get(), pl.leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
      throw_errno("chown", "/" + cleaned.substr(0, i));
  }
  return overlay::mkdir_in_root(dst, dest);
}

namespace {

// A matched name as a COPY source that matches only itself.
std::string literal_source(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The local tar archive (plain or compressed) at `path` inside the root, or an invalid fd.
UniqueFd open_archive(int root, const std::string& path) {
  UniqueFd f;
  try {
    f = overlay::open_in_root(root, path, O_RDONLY);
  } catch (const Error&) {
    return {};  // missing (the copy rules report it) or unreadable as a file
  }
  struct stat st {};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode) || !is_tar_archive(f.get())) return {};
  return f;
}

}  // namespace

// BuildKit unpacks every archive a source names, a wildcard's matches included (its
// unpack runs per match); what is no archive copies by the usual rules.
CopyStep::SplitSources CopyStep::split_archives() const {
  SplitSources out;
  for (const auto& src : spec_.sources) {
    std::string cleaned = overlay::clean_path(src);
    bool wildcard = cleaned.find_first_of("*?[") != std::string::npos;
    std::vector<std::string> names = wildcard ? expand_source(src_root_, src, spec_) : std::vector<std::string>{cleaned};
    std::vector<std::string> rest;
    for (const auto& name : names) {
      // One .dockerignore leaves out is missing, as the copy rules then report.
      UniqueFd f = spec_.excluded && spec_.excluded(name) ? UniqueFd() : open_archive(src_root_, name);
      if (f) {
        out.archives.emplace_back(name, std::move(f));
      } else {
        rest.push_back(name);
      }
    }
    if (!wildcard || names.empty()) {
      if (!rest.empty() || names.empty()) out.plain.push_back(src);  // as written, for messages
    } else {
      for (const auto& name : rest) out.plain.push_back(literal_source(name));
    }
  }
  return out;
}

void CopyStep::write(const std::filesystem::path& rootfs) {
  if (!owner_resolved_) resolve_owner(rootfs);
  UniqueFd dst = open_file(rootfs, O_RDONLY | O_DIRECTORY);
  DiskTarget target(dst.get());
  write_to(target, dst.get());
}

bool CopyStep::extracts_archives() const {
  return op_.add && !op_.parents && !split_archives().archives.empty();
}

void CopyStep::write(LayerTree& tree, const std::filesystem::path& view) {
  if (extracts_archives()) throw Error(ErrorKind::Internal, "COPY: archive extraction needs a mounted rootfs");
  if (!owner_resolved_) resolve_owner(view);
  write_to(tree, -1);
}

void CopyStep::write_to(CopyTarget& target, int archive_root) {
  auto is_dir = [&](const std::string& p) { return target.is_dir(p); };
  const std::string dest = copy_destination(dest_, target);
  CopySpec s = spec_;
  s.dest = dest;
  if (archive_root >= 0 && op_.add && !op_.parents) {
    // ADD extracts local tar archives into the destination directory; other sources copy.
    // (With --parents BuildKit copies from the source root, a directory, so nothing unpacks.)
    SplitSources split = split_archives();
    for (auto& [name, fd] : split.archives) {
      UniqueFd d = make_archive_dest(archive_root, dest);
      extract_tar_archive(fd.get(), "/proc/self/fd/" + std::to_string(d.get()), name);
    }
    s.sources = std::move(split.plain);
  }
  if (!s.sources.empty()) {
    // The plan the key was made from, unless the destination turned out to be a directory
    // (which plan_copy was not asked then) or a symlink: walking the sources twice costs a
    // stat per entry.
    std::optional<CopyPlan> fresh;
    if (!key_plan_ || dest != dest_ || s.sources != spec_.sources ||
        (!key_plan_->dest_probe.empty() && is_dir(key_plan_->dest_probe)))
      fresh = plan_copy(src_root_, s, is_dir);
    land_copy(src_root_, fresh ? *fresh : *key_plan_, s, target);
  }
  if (urls_.empty()) return;
  fetch();
  // Downloaded files are copied like context files (owner 0:0 unless --chown, their 0600 mode
  // unless --chmod, their mtime) and never extracted.
  CopySpec u{.sources = {}, .dest = dest, .uid = spec_.uid, .gid = spec_.gid, .chmod = op_.chmod};
  for (const auto& url : urls_) u.sources.push_back(url.rel);
  if (!downloads_fd_) downloads_fd_ = open_file(downloads_->path(), O_RDONLY | O_DIRECTORY);
  land_copy(downloads_fd_.get(), plan_copy(downloads_fd_.get(), u, is_dir), u, target);
}

}  // namespace cbuild::builder
