// LayoutStore — the local image store: an OCI image layout at $ROOT, implementing oci::Store.
//
//   $ROOT/oci-layout          {"imageLayoutVersion":"1.0.0"}
//   $ROOT/index.json          tags: descriptors annotated org.opencontainers.image.ref.name =
//                             the FULL normalized reference ("docker.io/library/busybox:1.35")
//   $ROOT/blobs/sha256/<hex>  content, verified on every read
//   $ROOT/tmp/ingest-*        blobs being written (flock'd while live)
//   $ROOT/tmp/proc-*          a running build's mount points and temp dirs (ProcessScratch)
//   $ROOT/leases/<id>         digests a running build/pull/mount uses (flock'd while live)
// Entries of tmp/, leases/ and snapshots/.tmp/ are named after their owner, pid and process
// start time (oci/base/owner.h). Opening the store reclaims those of dead owners — detaches
// their mounts, removes them without following symlinks — and never a live owner's, so what
// a killed build left goes with the next command, and a concurrent build is left alone.
//   $ROOT/.cbuild.lock        flock: LOCK_EX for index.json rewrites and gc, LOCK_SH for blob
//                             publication and lease updates
//
// Durability: a blob is fsynced and renamed into blobs/ before commit() returns; the blobs
// directory is fsynced before the next index.json write (once for all the blobs of a build, not
// once per blob) and when the store is closed, so every blob is durable before any tag can name
// it. index.json is rewritten to a temp file, fsynced and renamed under the lock: readers see
// the old or the new file, never a torn one, and concurrent taggers in other processes are
// serialised. An update that changes no entry (re-tagging a name with the manifest it already
// names) leaves index.json untouched. No symlinks are created.
// Entries of index.json this store did not write (other tools' tags, untagged entries, extra
// fields) are kept as they are.
//
// Lazy content: a tag may name an image whose layer blobs are not fetched yet (a build's base
// image, or a --cache-from hit pushed without being read; containerd's model). stat() says
// what is here — such a blob is absent — and the walks that only need descriptors (gc's mark
// phase, sizes) take it as absent. open() of an absent blob asks the fetcher set with
// set_blob_fetcher(), which puts the blob into this store verified, and then opens it; without
// a fetcher, or when it knows no origin, open() is NotFound as for any absent blob, and a
// fetcher that cannot fetch throws its own error naming the blob and the origin it tried.
//
// Thread-safety: one LayoutStore may be used from several threads (index updates are also
// serialised in-process). Errors: cbuild::Error — NotFound (blob/tag absent where required),
// DataLoss (digest/size mismatch), ResourceExhausted (disk full), FailedPrecondition (root is
// not an OCI layout), InvalidArgument (a malformed index.json names the field).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "oci/base/unique_fd.h"
#include "oci/store.h"

namespace cbuild::oci {

inline constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

class LayoutStore;

// A lease: while it lives, gc keeps every blob it names (and what those reach). Held by a
// builder, puller or mount for the duration of the operation; the file is removed when the
// Lease is destroyed, and one left by a killed process is ignored by gc and removed by the next
// open() (or gc).
class Lease {
 public:
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  // Records `digest`. Returns whether the blob exists now: if false, the caller must (re)fetch
  // it — a gc may have removed it just before the lease recorded it. Thread-safe.
  bool add(const Digest& digest);
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  friend class LayoutStore;
  Lease(const LayoutStore& store, std::filesystem::path path, UniqueFd fd);
  const LayoutStore& store_;
  std::filesystem::path path_;
  UniqueFd fd_;
  std::mutex mu_;
};

struct GcOptions {
  std::vector<Digest> extra_roots;  // e.g. the build cache's records
  // Blobs and temp files younger than this are kept (a writer may be about to tag them).
  std::chrono::seconds grace{60};
  bool dry_run = false;
  // When set, only these blobs may be removed (rmi: the blobs of one image).
  std::optional<std::set<Digest>> only;
};

struct GcResult {
  std::vector<Digest> removed;
  std::uint64_t bytes_freed = 0;
  std::size_t temp_files_removed = 0;
  std::size_t stale_leases_removed = 0;
};

class LayoutStore final : public Store {
 public:
  // Opens (creating oci-layout, index.json, blobs/sha256, tmp/ if root is missing or empty) the
  // layout at `root`. A non-empty directory that is not an OCI layout → FailedPrecondition.
  // Creation runs under the exclusive store lock with oci-layout written last, so concurrent
  // first openers all succeed; a layout a killed opener left half made is completed. Then
  // reclaims what dead owners left (see the top of this file).
  static std::unique_ptr<LayoutStore> open(const std::filesystem::path& root);
  ~LayoutStore() override;

  const std::filesystem::path& root() const noexcept { return root_; }
  std::filesystem::path blob_path(const Digest& digest) const;

  // BlobProvider
  std::optional<std::int64_t> stat(const Digest& digest) const override;
  // An absent blob is fetched through the blob fetcher first, if one is set (see the top).
  std::unique_ptr<ByteSource> open(const Digest& digest) const override;

  // Brings `digest` into the store (verified, through begin_ingest) and returns true, or returns
  // false when it knows nowhere to get it; throws an Error naming the blob and the origin when
  // a fetch fails. Called from open() with no store lock held, possibly from several threads.
  using BlobFetcher = std::function<bool(const Digest& digest)>;
  // Set once, right after open(), before the store is shared between threads.
  void set_blob_fetcher(BlobFetcher fetcher) { fetcher_ = std::move(fetcher); }
  // Ingester
  std::unique_ptr<Ingest> begin_ingest() override;
  // Bytes already stored (same digest and size) are not written again: a warm rebuild's
  // config and manifest cost a stat, not a temp file, two fsyncs and a rename.
  Digest put_blob(std::string_view bytes) override;
  // TagIndex
  std::optional<Descriptor> resolve(std::string_view name) const override;
  void set_tag(std::string_view name, const Descriptor& desc) override;
  bool remove_tag(std::string_view name) override;
  std::vector<std::pair<std::string, Descriptor>> tags() const override;

  // Sets several tags in one index.json rewrite.
  void set_tags(const std::vector<std::pair<std::string, Descriptor>>& tags);
  // Adds an untagged index.json entry for desc unless one with its digest exists.
  void add_entry(const Descriptor& desc);
  // Removes every index.json entry (tagged or not) pointing at `digest`; returns how many.
  std::size_t remove_entries(const Digest& digest);
  // Every descriptor of index.json (tagged or not), as written.
  std::vector<Descriptor> index_entries() const;

  // A new lease (see Lease). Every blob committed through this store while a default lease is
  // set is also recorded in it.
  std::shared_ptr<Lease> acquire_lease(std::string_view purpose = "op") const;
  void set_default_lease(std::shared_ptr<Lease> lease);

  // Removes blobs reachable neither from index.json entries (walking manifests and indexes),
  // nor from options.extra_roots, nor from live leases; also temp files of dead ingests and
  // stale leases. Runs under the exclusive store lock.
  GcResult gc(const GcOptions& options = {});
  // Every digest reachable from `roots` (manifests/indexes walked; missing blobs skipped).
  std::set<Digest> reachable(const std::vector<Digest>& roots) const;

 private:
  explicit LayoutStore(std::filesystem::path root);
  friend class Lease;
  // Opens $ROOT/.cbuild.lock and flocks it; the lock is held until the fd is closed.
  UniqueFd lock(bool exclusive) const;
  std::set<Digest> live_lease_digests(bool remove_stale, std::size_t* stale) const;
  // Under the shared lock: when `digest` is stored with `size` bytes (any size if negative),
  // refreshes its age (so a concurrent gc's grace period protects it until the caller tags
  // it), records it in the default lease and returns true. A file of another size is damaged
  // and is not adopted (the caller's verified bytes replace it).
  bool adopt_existing(const Digest& digest, std::int64_t size);
  void record_in_default_lease(const Digest& digest);
  void publish_blob(int fd, const std::filesystem::path& tmp, const Digest& digest, std::int64_t size);
  void update_index(const std::function<void(std::vector<Descriptor>&)>& fn);
  // Directory syncs of published blob names, batched until the next index write.
  void note_unsynced_name(const std::filesystem::path& dir);
  void sync_blob_names();

  std::filesystem::path root_;
  mutable std::mutex index_mu_;
  std::mutex lease_mu_;
  std::shared_ptr<Lease> default_lease_;
  std::mutex unsynced_mu_;
  std::set<std::filesystem::path> unsynced_dirs_;
  BlobFetcher fetcher_;
};

}  // namespace cbuild::oci
