// Garbage collection and leases of LayoutStore (see layout_store.h for the contract).
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <deque>
#include <random>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/media_types.h"

namespace cbuild::oci {
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kMaxDocumentSize = 4 << 20;

std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    throw_errno("list", dir.string());
  }
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  ::closedir(d);
  return out;
}

bool older_than(const struct stat& st, std::chrono::seconds grace) {
  return std::time(nullptr) - st.st_mtime >= grace.count();
}

std::string random_id() {
  std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

Lease::Lease(const LayoutStore& store, fs::path path, UniqueFd fd)
    : store_(store), path_(std::move(path)), fd_(std::move(fd)) {}

Lease::~Lease() {
  ::unlink(path_.c_str());
}

bool Lease::add(const Digest& digest) {
  // Under the shared store lock: a gc either saw this line or starts after it.
  UniqueFd held = store_.lock(false);
  std::lock_guard g(mu_);
  std::string line = digest.str() + "\n";
  write_all(fd_.get(), line.data(), line.size(), "lease " + path_.string());
  return store_.stat(digest).has_value();
}

std::shared_ptr<Lease> LayoutStore::acquire_lease(std::string_view purpose) const {
  fs::path dir = root_ / "leases";
  make_dirs(dir);
  std::string safe;
  for (char c : purpose) safe += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  // The owner stamp: a lease of a dead process is removed by the next store opener.
  fs::path p = dir / (safe + "-" + OwnerStamp::self().str() + "-" + random_id());
  UniqueFd fd = open_file(p, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0644);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::unlink(p.c_str());
    throw_errno("lock lease", p.string(), err);
  }
  return std::shared_ptr<Lease>(new Lease(*this, p, std::move(fd)));
}

void LayoutStore::set_default_lease(std::shared_ptr<Lease> lease) {
  std::lock_guard g(lease_mu_);
  default_lease_ = std::move(lease);
}

std::set<Digest> LayoutStore::live_lease_digests(bool remove_stale, std::size_t* stale) const {
  std::set<Digest> out;
  fs::path dir = root_ / "leases";
  for (auto& name : list_dir(dir)) {
    fs::path p = dir / name;
    int raw = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (raw < 0) continue;
    UniqueFd fd(raw);
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
      // Nobody holds it: its process is gone.
      if (remove_stale) ::unlink(p.c_str());
      if (stale) ++*stale;
      continue;
    }
    auto text = read_file_if_exists(p);
    if (!text) continue;
    std::size_t start = 0;
    while (start < text->size()) {
      auto nl = text->find('\n', start);
      if (nl == std::string::npos) break;  // a line still being written is not complete yet
      if (auto d = Digest::try_parse(std::string_view(*text).substr(start, nl - start))) out.insert(*d);
      start = nl + 1;
    }
  }
  return out;
}

std::set<Digest> LayoutStore::reachable(const std::vector<Digest>& roots) const {
  std::set<Digest> seen;
  std::deque<std::pair<Digest, std::string>> todo;  // digest, media type ("" = unknown)
  for (auto& r : roots) todo.emplace_back(r, "");
  auto push = [&](const Descriptor& d) { todo.emplace_back(d.digest, d.media_type); };
  while (!todo.empty()) {
    auto [digest, mt] = std::move(todo.front());
    todo.pop_front();
    if (!seen.insert(digest).second) continue;
    if (media_types::is_layer(mt) || media_types::is_config(mt)) continue;
    auto size = stat(digest);
    if (!size || *size > kMaxDocumentSize) continue;
    std::string bytes;
    try {
      bytes = read_blob(digest, kMaxDocumentSize);
    } catch (const Error&) {
      continue;  // corrupt: kept as a leaf, reported by whoever reads it
    }
    if (bytes.empty() || bytes.front() != '{') continue;
    try {
      std::string kind = mt.empty() ? sniff_media_type(bytes) : mt;
      if (media_types::is_manifest(kind)) {
        Manifest m = Manifest::parse(bytes, "manifest " + digest.str());
        push(m.config);
        for (auto& l : m.layers) push(l);
        if (m.subject) push(*m.subject);
      } else if (media_types::is_index(kind)) {
        Index x = Index::parse(bytes, "index " + digest.str());
        for (auto& m : x.manifests) push(m);
        if (x.subject) push(*x.subject);
      }
    } catch (const Error&) {
      // Not a manifest or index (a config or other JSON blob): a leaf.
    }
  }
  return seen;
}

GcResult LayoutStore::gc(const GcOptions& options) {
  GcResult result;
  std::lock_guard g(index_mu_);
  UniqueFd held = lock(true);
  std::vector<Digest> roots = options.extra_roots;
  {
    // index_entries() takes index_mu_; read directly under the held lock instead.
    auto text = read_file(root_ / "index.json");
    auto idx = Index::parse(text, "store index " + quote((root_ / "index.json").string()));
    for (auto& d : idx.manifests) roots.push_back(d.digest);
  }
  for (auto& d : live_lease_digests(!options.dry_run, &result.stale_leases_removed)) roots.push_back(d);
  std::set<Digest> keep = reachable(roots);

  fs::path blobs = root_ / "blobs";
  for (auto& alg : list_dir(blobs)) {
    for (auto& hex : list_dir(blobs / alg)) {
      auto d = Digest::try_parse(alg + ":" + hex);
      fs::path p = blobs / alg / hex;
      struct stat st {};
      if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (d && keep.count(*d)) continue;
      if (options.only && (!d || !options.only->count(*d))) continue;
      if (!older_than(st, options.grace)) continue;
      if (!options.dry_run && ::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno("gc: remove blob", p.string());
      if (d) result.removed.push_back(*d);
      result.bytes_freed += static_cast<std::uint64_t>(st.st_size);
    }
  }
  // Temp files of ingests whose process died (a live ingest holds its flock).
  fs::path tmp = root_ / "tmp";
  for (auto& name : list_dir(tmp)) {
    fs::path p = tmp / name;
    int raw = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (raw < 0) continue;
    UniqueFd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !older_than(st, options.grace)) continue;
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;
    if (!options.dry_run) ::unlink(p.c_str());
    ++result.temp_files_removed;
  }
  // index.json temp files of a killed writer (we hold the exclusive lock: none is live).
  for (auto& name : list_dir(root_))
    if (name.starts_with(".index.json.tmp-") && !options.dry_run) ::unlink((root_ / name).c_str());
  if (!options.dry_run && !result.removed.empty()) fsync_dir(blobs / "sha256");
  return result;
}

}  // namespace cbuild::oci
