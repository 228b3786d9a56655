#include "builder/cache/cache_mounts.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/digest.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

// flock without blocking in the kernel, so Ctrl-C is noticed while another build holds it.
// Returns false only for `try_only` when the lock is busy.
bool lock(int fd, int op, bool try_only, const fs::path& shown) {
  for (;;) {
    if (::flock(fd, op | LOCK_NB) == 0) return true;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) throw_errno("flock", shown.string());
    if (try_only) return false;
    check_cancelled();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// True while `fd` is still the file at `path`: clear() may have removed the instance between
// our open and our flock, and a lock on a deleted file protects nothing.
bool still_linked(int fd, const fs::path& path) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

void create_data(const fs::path& instance, const CacheMountRequest& r,
                 const std::function<void(const fs::path&)>& init) {
  TempDir staging(instance, ".new-");
  // chown before chmod: chown clears set-id bits.
  if (::chown(staging.path().c_str(), r.uid, r.gid) != 0) throw_errno("chown", staging.path().string());
  if (::chmod(staging.path().c_str(), r.mode & 07777) != 0) throw_errno("chmod", staging.path().string());
  if (init) init(staging.path());
  fs::path data = instance / "data";
  if (::rename(staging.path().c_str(), data.c_str()) != 0) throw_errno("rename", data.string());
  staging.release();
}

}  // namespace

CacheMountRequest::Sharing parse_sharing(const std::string& s) {
  if (s == "shared" || s.empty()) return CacheMountRequest::Sharing::Shared;
  if (s == "private") return CacheMountRequest::Sharing::Private;
  if (s == "locked") return CacheMountRequest::Sharing::Locked;
  throw Error(ErrorKind::InvalidArgument, "unknown sharing mode " + quote(s) + " (expected shared, private or locked)");
}

CacheMountStore::CacheMountStore(const fs::path& store_root) : dir_(store_root / "cache" / "mounts") {}

CacheMountLease CacheMountStore::acquire(const CacheMountRequest& r, const std::function<void(const fs::path&)>& init) {
  using Sharing = CacheMountRequest::Sharing;
  fs::path key_dir = dir_ / oci::Digest::of(r.key).hex().substr(0, 32);
  make_dirs(key_dir);
  if (!fs::exists(key_dir / "id")) write_file_atomic(key_dir / "id", r.id + "\n");
  for (int n = 0;;) {
    fs::path instance = key_dir / std::to_string(n);
    make_dirs(instance);
    fs::path lock_path = instance / "lock";
    UniqueFd fd = open_file(lock_path, O_RDWR | O_CREAT, 0644);
    bool got = r.sharing == Sharing::Private ? lock(fd.get(), LOCK_EX, true, lock_path)
                                             : lock(fd.get(), r.sharing == Sharing::Shared ? LOCK_SH : LOCK_EX, false,
                                                    lock_path);
    if (!got) {
      ++n;  // private and busy: the next instance
      continue;
    }
    if (!still_linked(fd.get(), lock_path)) continue;  // cleared meanwhile: the same n again
    if (!fs::exists(instance / "data")) {
      // Shared holders create under the exclusive lock too, so two builds never both make it.
      if (r.sharing == Sharing::Shared) lock(fd.get(), LOCK_EX, false, lock_path);
      if (!still_linked(fd.get(), lock_path)) continue;
      if (!fs::exists(instance / "data")) create_data(instance, r, init);
      if (r.sharing == Sharing::Shared) lock(fd.get(), LOCK_SH, false, lock_path);
    }
    return CacheMountLease(instance / "data", std::move(fd));
  }
}

std::size_t CacheMountStore::clear() {
  std::size_t removed = 0;
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) return 0;
  for (const auto& key : fs::directory_iterator(dir_)) {
    if (!key.is_directory()) continue;
    bool busy = false;
    for (const auto& inst : fs::directory_iterator(key.path())) {
      if (!inst.is_directory()) continue;
      fs::path lock_path = inst.path() / "lock";
      UniqueFd fd = open_file(lock_path, O_RDWR | O_CREAT, 0644);
      if (!lock(fd.get(), LOCK_EX, true, lock_path)) {
        busy = true;  // a RUN is using it
        continue;
      }
      remove_tree(inst.path());  // still holding the lock: waiters see it unlinked and retry
      ++removed;
    }
    if (!busy) remove_tree(key.path());
  }
  return removed;
}

}  // namespace cbuild::builder
