// CacheMountStore — the persistent directories behind RUN --mount=type=cache, kept between
// builds under $ROOT/cache/mounts/ until `cbuild prune --all` clears them.
//
//   $ROOT/cache/mounts/<key>/id          the cache id as written (for people looking)
//   $ROOT/cache/mounts/<key>/<n>/lock    flock of instance n
//   $ROOT/cache/mounts/<key>/<n>/data/   what RUN sees at the mount target
//
// <key> is the sha256 of the request's key string (the id, plus the seed's identity when the
// mount has from=, as BuildKit keeps those apart), so an id like "/root/.cache" never becomes
// a path. Instance 0 is the one every build shares; sharing=private takes the first instance
// nobody holds, adding 1, 2, … when all are busy — BuildKit's "a fresh directory when busy".
//
// Sharing, as BuildKit means it:
//   shared   any number of RUNs use instance 0 at once (a shared flock);
//   locked   one RUN at a time on instance 0; the others wait (an exclusive flock);
//   private  an exclusive flock on a free instance; never waits.
// Waits poll, so Ctrl-C interrupts them (Error{Cancelled}).
//
// A missing data/ is created under the exclusive lock: mode/uid/gid (default 0755, 0:0),
// then `init` fills it (the from= seed), in a staging directory renamed into place, so a
// crash never leaves a half-made cache. Its contents are never part of a layer.
// Thread-safe and process-safe (flock + rename). Throws cbuild::Error naming the path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "oci/base/unique_fd.h"

namespace cbuild::builder {

struct CacheMountRequest {
  std::string id;   // shown, and recorded in the id file
  std::string key;  // what tells caches apart (id, or id + seed identity)
  enum class Sharing { Shared, Private, Locked } sharing = Sharing::Shared;
  std::uint32_t mode = 0755;
  std::uint32_t uid = 0, gid = 0;
};

// A held cache directory; the lock goes with the object. Move-only.
class CacheMountLease {
 public:
  CacheMountLease(std::filesystem::path data, UniqueFd lock) : data_(std::move(data)), lock_(std::move(lock)) {}
  const std::filesystem::path& path() const noexcept { return data_; }

 private:
  std::filesystem::path data_;
  UniqueFd lock_;
};

class CacheMountStore {
 public:
  // `store_root` is $ROOT; nothing is created until acquire().
  explicit CacheMountStore(const std::filesystem::path& store_root);

  // Takes (creating when missing) the directory for `request`. `init(dir)` is called only
  // when the directory is new, after it got its mode and owner; it may change both.
  CacheMountLease acquire(const CacheMountRequest& request,
                          const std::function<void(const std::filesystem::path& dir)>& init = {});

  // Removes every cache directory no RUN holds; returns how many instances went.
  std::size_t clear();

 private:
  std::filesystem::path dir_;
};

// "shared" | "private" | "locked" → Sharing; anything else is InvalidArgument.
CacheMountRequest::Sharing parse_sharing(const std::string& s);

}  // namespace cbuild::builder
