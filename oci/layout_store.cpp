#include "oci/layout_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "oci/ingest.h"
#include "oci/media_types.h"
#include "oci/sinks.h"
#include "oci/verify.h"

namespace cbuild::oci {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr std::string_view kLayoutFile = R"({"imageLayoutVersion":"1.0.0"})";

std::string empty_index() {
  return json{{"schemaVersion", 2}, {"mediaType", media_types::kOciIndex}, {"manifests", json::array()}}.dump();
}

// Empty, or holding only what other cbuild components may create under $ROOT before the
// layout exists (snapshots, build cache, mounts, …), or what an opener killed while creating the
// layout left (an empty blobs/sha256, the empty index.json): safe to turn into a layout.
bool dir_is_empty(const fs::path& p) {
  std::error_code ec;
  fs::directory_iterator it(p, ec);
  if (ec) throw_errno("open store root", p.string(), ec.value());
  // oci-layout too: a concurrent first opener may finish the layout between our look for it and
  // this check, and callers read oci-layout again under the store lock before trusting it.
  static const std::set<std::string> ours = {"snapshots", "cache",        "mounts",    "leases",
                                             "tmp",       ".cbuild.lock", "oci-layout"};
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw_errno("open store root", p.string(), ec.value());
    std::string name = it->path().filename().string();
    if (ours.count(name)) continue;
    if (name == "blobs" && it->is_directory(ec) && !it->is_symlink(ec)) {
      bool empty = true;
      for (fs::directory_iterator b(it->path(), ec), end; !ec && b != end; b.increment(ec)) {
        fs::directory_iterator inner(b->path(), ec);
        if (b->path().filename() != "sha256" || b->is_symlink() || ec || inner != fs::directory_iterator()) empty = false;
      }
      if (!ec && empty) continue;
    }
    if (name == "index.json" && it->is_regular_file(ec) && !it->is_symlink(ec)) {
      json j;
      try {
        j = json::parse(read_file_if_exists(it->path(), 4096).value_or(""), nullptr, false);
      } catch (const Error&) {
        return false;  // too big to be an empty index
      }
      if (j.is_object() && (!j.contains("manifests") || (j["manifests"].is_array() && j["manifests"].empty()))) continue;
    }
    return false;
  }
  return true;
}

// Creates `path` with `data` unless it exists (a concurrent opener may win; that is fine).
void create_exclusive(const fs::path& path, std::string_view data) {
  fs::path tmp = path.parent_path() / "tmp" / ("init-" + OwnerStamp::self().str() + "-" + path.filename().string());
  {
    UniqueFd fd = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    try {
      write_all(fd.get(), data.data(), data.size(), tmp.string());
      fsync_fd(fd.get(), tmp.string());
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && err != EEXIST) throw_errno("create", path.string(), err);
  fsync_dir(path.parent_path());
}

std::string ref_name(const Descriptor& d) {
  auto it = d.annotations.find(kRefNameAnnotation);
  return it == d.annotations.end() ? std::string() : it->second;
}

}  // namespace

LayoutStore::LayoutStore(fs::path root) : root_(std::move(root)) {}
LayoutStore::~LayoutStore() {
  // Blobs published but never tagged (a build exporting to a file, a failed build) still get
  // durable names: cache records that name them were kept.
  try {
    sync_blob_names();
  } catch (...) {
  }
}

namespace {

void check_layout_file(const fs::path& root, const std::string& layout) {
  json j = json::parse(layout, nullptr, false);
  if (!j.is_object() || !j.contains("imageLayoutVersion") || !j["imageLayoutVersion"].is_string())
    throw Error(ErrorKind::FailedPrecondition,
                "open store " + quote(root.string()) + ": oci-layout: field \"imageLayoutVersion\" is missing or not a string");
  if (j["imageLayoutVersion"].get<std::string>() != "1.0.0")
    throw Error(ErrorKind::FailedPrecondition, "open store " + quote(root.string()) + ": unsupported imageLayoutVersion " +
                                                   quote(j["imageLayoutVersion"].get<std::string>()));
}

// Turns a missing or empty `root` into a layout. Under the exclusive store lock, so concurrent
// first openers create it once and the others find it complete: oci-layout is written last,
// and its presence is what marks the layout as finished.
void create_layout(const fs::path& root) {
  auto refuse = [&] {
    throw Error(ErrorKind::FailedPrecondition,
                "open store " + quote(root.string()) +
                    ": directory is not empty and is not an OCI image layout (no oci-layout file)");
  };
  // Refused before anything (the lock file) is written into somebody else's directory.
  struct stat st {};
  if (::stat(root.c_str(), &st) == 0 && !dir_is_empty(root)) refuse();
  make_dirs(root);
  UniqueFd lock = open_file(root / ".cbuild.lock", O_RDWR | O_CREAT, 0644);
  while (::flock(lock.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw_errno("lock store", (root / ".cbuild.lock").string());
  if (auto layout = read_file_if_exists(root / "oci-layout", 4096)) return check_layout_file(root, *layout);
  if (!dir_is_empty(root)) refuse();
  make_dirs(root / "blobs" / "sha256");
  make_dirs(root / "tmp");
  make_dirs(root / "leases");
  if (!fs::exists(root / "index.json")) create_exclusive(root / "index.json", empty_index());
  create_exclusive(root / "oci-layout", kLayoutFile);
}

// What processes that died while using the store left: their scratch dirs and mount points in
// tmp/ first (a dead build's overlay over a snapshot scratch upper is detached before that
// upper goes), then the snapshot scratch dirs, then their leases. A few small directories are
// listed; /proc is read only for the entries they hold.
void reclaim_dead(const fs::path& root) {
  reclaim_dead_entries(root / "tmp");
  reclaim_dead_entries(root / "snapshots" / ".tmp");
  reclaim_dead_entries(root / "leases");
}

}  // namespace

std::unique_ptr<LayoutStore> LayoutStore::open(const fs::path& root) {
  if (root.empty()) throw Error(ErrorKind::InvalidArgument, "open store: root path is empty");
  struct stat st {};
  if (::stat(root.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      throw Error(ErrorKind::FailedPrecondition, "open store " + quote(root.string()) + ": not a directory");
  } else if (errno != ENOENT) {
    throw_errno("open store", root.string());
  }
  if (auto layout = read_file_if_exists(root / "oci-layout", 4096)) check_layout_file(root, *layout);
  else create_layout(root);
  std::unique_ptr<LayoutStore> s(new LayoutStore(root));
  make_dirs(root / "blobs" / "sha256");
  make_dirs(root / "tmp");
  make_dirs(root / "leases");
  if (!fs::exists(root / "index.json")) create_exclusive(root / "index.json", empty_index());
  reclaim_dead(root);
  return s;
}

fs::path LayoutStore::blob_path(const Digest& digest) const {
  if (digest.is_empty()) throw Error(ErrorKind::InvalidArgument, "store: empty digest");
  return root_ / "blobs" / digest.algorithm() / digest.hex();
}

UniqueFd LayoutStore::lock(bool exclusive) const {
  fs::path p = root_ / ".cbuild.lock";
  UniqueFd fd = open_file(p, O_RDWR | O_CREAT, 0644);
  while (::flock(fd.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
    if (errno != EINTR) throw_errno("lock store", p.string());
  }
  return fd;
}

std::optional<std::int64_t> LayoutStore::stat(const Digest& digest) const {
  struct stat st {};
  if (::stat(blob_path(digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<std::int64_t>(st.st_size);
}

std::unique_ptr<ByteSource> LayoutStore::open(const Digest& digest) const {
  fs::path p = blob_path(digest);
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT && fetcher_ && fetcher_(digest)) fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) throw Error(ErrorKind::NotFound, "blob " + digest.str() + " not found in store " + quote(root_.string()), ENOENT);
    throw_errno("open blob", p.string());
  }
  UniqueFd owned(fd);
  struct stat st {};
  if (::fstat(owned.get(), &st) != 0) throw_errno("stat blob", p.string());
  auto src = std::make_unique<FileSource>(std::move(owned), p.string());
  return open_verified(std::move(src), digest, static_cast<std::int64_t>(st.st_size),
                       "blob " + digest.str() + " in store " + quote(root_.string()));
}

std::unique_ptr<Ingest> LayoutStore::begin_ingest() {
  return std::make_unique<LayoutIngest>(root_ / "tmp", [this](int, const fs::path& tmp, const Digest& d, std::int64_t) {
    publish_blob(-1, tmp, d, 0);
  });
}

Digest LayoutStore::put_blob(std::string_view bytes) {
  Digest d = Digest::of(bytes);
  {
    UniqueFd held = lock(false);
    if (adopt_existing(d, static_cast<std::int64_t>(bytes.size()))) return d;
  }
  return Ingester::put_blob(bytes);
}

bool LayoutStore::adopt_existing(const Digest& digest, std::int64_t size) {
  fs::path dst = blob_path(digest);
  struct stat st {};
  if (::stat(dst.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (size >= 0 && st.st_size != size) return false;
  ::utimensat(AT_FDCWD, dst.c_str(), nullptr, 0);
  // Another process may have published it a moment ago and not synced its name yet: a tag this
  // process writes must not reference a blob that a crash could still take away.
  note_unsynced_name(dst.parent_path());
  record_in_default_lease(digest);
  return true;
}

void LayoutStore::record_in_default_lease(const Digest& digest) {
  std::shared_ptr<Lease> lease;
  {
    std::lock_guard g(lease_mu_);
    lease = default_lease_;
  }
  if (lease) {
    std::lock_guard g(lease->mu_);
    std::string line = digest.str() + "\n";
    write_all(lease->fd_.get(), line.data(), line.size(), "lease " + lease->path_.string());
  }
}

void LayoutStore::publish_blob(int, const fs::path& tmp, const Digest& digest, std::int64_t size) {
  UniqueFd held = lock(false);
  fs::path dst = blob_path(digest);
  if (digest.algorithm() != "sha256") make_dirs(dst.parent_path());
  // Already stored: keep the existing file (one of another size is damaged: replace it).
  if (adopt_existing(digest, size)) return;
  if (::rename(tmp.c_str(), dst.c_str()) != 0) throw_errno("store blob " + digest.str(), dst.string());
  // The blob's bytes are synced (Ingest::commit); its name is synced with the next index write,
  // once for all the blobs of an operation (a build publishes layers, config and manifest).
  note_unsynced_name(dst.parent_path());
  record_in_default_lease(digest);
}

void LayoutStore::note_unsynced_name(const fs::path& dir) {
  std::lock_guard g(unsynced_mu_);
  unsynced_dirs_.insert(dir);
}

void LayoutStore::sync_blob_names() {
  std::set<fs::path> dirs;
  {
    std::lock_guard g(unsynced_mu_);
    dirs.swap(unsynced_dirs_);
  }
  try {
    for (const auto& d : dirs) fsync_dir(d);
  } catch (...) {
    std::lock_guard g(unsynced_mu_);
    unsynced_dirs_.insert(dirs.begin(), dirs.end());
    throw;
  }
}

std::vector<Descriptor> LayoutStore::index_entries() const {
  std::lock_guard g(index_mu_);
  std::string bytes = read_file(root_ / "index.json");
  json j = json::parse(bytes, nullptr, false);
  std::string what = "store index " + quote((root_ / "index.json").string());
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::InvalidArgument, what + ": not a JSON object");
  auto it = j.find("manifests");
  if (it == j.end() || it->is_null()) return {};
  if (!it->is_array()) throw Error(ErrorKind::InvalidArgument, what + ": field \"manifests\" must be an array");
  std::vector<Descriptor> out;
  for (std::size_t i = 0; i < it->size(); ++i)
    out.push_back(descriptor_from_json((*it)[i], what + " manifests[" + std::to_string(i) + "]"));
  return out;
}

void LayoutStore::update_index(const std::function<void(std::vector<Descriptor>&)>& fn) {
  std::lock_guard g(index_mu_);
  UniqueFd held = lock(true);
  fs::path path = root_ / "index.json";
  std::string what = "store index " + quote(path.string());
  json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorKind::InvalidArgument, what + ": not a JSON object");
  // Keep other tools' entries byte-equivalent: only entries we change are re-encoded.
  json& arr = j["manifests"];
  if (arr.is_null()) arr = json::array();
  if (!arr.is_array()) throw Error(ErrorKind::InvalidArgument, what + ": field \"manifests\" must be an array");
  std::vector<Descriptor> entries;
  for (std::size_t i = 0; i < arr.size(); ++i)
    entries.push_back(descriptor_from_json(arr[i], what + " manifests[" + std::to_string(i) + "]"));
  std::vector<Descriptor> before = entries;
  fn(entries);
  // Nothing changed: no rewrite (a warm rebuild re-tags the same manifest and writes nothing).
  if (entries == before && j.contains("schemaVersion")) return;
  json out = json::array();
  for (auto& e : entries) {
    auto same = std::find(before.begin(), before.end(), e);
    out.push_back(same != before.end() ? arr[static_cast<std::size_t>(same - before.begin())] : to_json(e));
  }
  arr = std::move(out);
  if (!j.contains("schemaVersion")) j["schemaVersion"] = 2;
  sync_blob_names();  // every blob a tag can name is durable before the tag is
  write_file_atomic(path, j.dump());
}

std::optional<Descriptor> LayoutStore::resolve(std::string_view name) const {
  for (auto& d : index_entries())
    if (ref_name(d) == name) return d;
  return std::nullopt;
}

void LayoutStore::set_tags(const std::vector<std::pair<std::string, Descriptor>>& tags) {
  for (auto& [name, desc] : tags) {
    if (name.empty()) throw Error(ErrorKind::InvalidArgument, "tag: empty name");
    if (!stat(desc.digest))
      throw Error(ErrorKind::NotFound, "tag " + quote(name) + ": manifest " + desc.digest.str() + " is not in the store");
  }
  update_index([&](std::vector<Descriptor>& entries) {
    for (auto& [name, desc] : tags) {
      Descriptor d = desc;
      d.annotations[kRefNameAnnotation] = name;
      // A tag already naming exactly this descriptor stays where it is (no rewrite at all).
      auto same = [&](const Descriptor& e) { return e == d; };
      if (std::count_if(entries.begin(), entries.end(), same) == 1 &&
          std::count_if(entries.begin(), entries.end(), [&](const Descriptor& e) { return ref_name(e) == name; }) == 1)
        continue;
      std::erase_if(entries, [&](const Descriptor& e) { return ref_name(e) == name; });
      entries.push_back(std::move(d));
    }
  });
}

void LayoutStore::set_tag(std::string_view name, const Descriptor& desc) { set_tags({{std::string(name), desc}}); }

bool LayoutStore::remove_tag(std::string_view name) {
  bool removed = false;
  update_index([&](std::vector<Descriptor>& entries) {
    removed = std::erase_if(entries, [&](const Descriptor& e) { return ref_name(e) == name; }) > 0;
  });
  return removed;
}

void LayoutStore::add_entry(const Descriptor& desc) {
  if (!stat(desc.digest)) throw Error(ErrorKind::NotFound, "index entry: manifest " + desc.digest.str() + " is not in the store");
  update_index([&](std::vector<Descriptor>& entries) {
    for (auto& e : entries)
      if (e.digest == desc.digest) return;
    entries.push_back(desc);
  });
}

std::size_t LayoutStore::remove_entries(const Digest& digest) {
  std::size_t n = 0;
  update_index([&](std::vector<Descriptor>& entries) {
    n = std::erase_if(entries, [&](const Descriptor& e) { return e.digest == digest; });
  });
  return n;
}

std::vector<std::pair<std::string, Descriptor>> LayoutStore::tags() const {
  std::vector<std::pair<std::string, Descriptor>> out;
  for (auto& d : index_entries())
    if (auto n = ref_name(d); !n.empty()) out.emplace_back(n, d);
  std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.first < b.first; });
  return out;
}

}  // namespace cbuild::oci
