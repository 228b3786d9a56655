// apply_copy() and content_key(): writing a CopyPlan into the image (by the rules of
// copy_rules.h, through the disk writer) and hashing what it reads (the plan itself is made in
// copy_plan.cpp).
#include "builder/steps/copy_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "builder/steps/copy_rules.h"
#include "builder/steps/disk_target.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/parallel.h"
#include "overlay/layer_xattrs.h"
#include "overlay/safe_path.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::builder {

CopyStats apply_copy(int src_root, int dest_root, const CopyPlan& plan, const CopySpec& spec) {
  DiskTarget target(dest_root);
  return land_copy(src_root, plan, spec, target);
}

UniqueFd SourceFiles::open(const std::string& src) {
  auto slash = src.rfind('/');
  std::string dir = slash == std::string::npos ? "" : src.substr(0, slash);
  std::string leaf = slash == std::string::npos ? src : src.substr(slash + 1);
  if (!dir_fd_ || dir != dir_) {
    dir_fd_ = overlay::open_in_root(root_, dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
    dir_ = dir;
  }
  if (leaf.empty() || leaf == "." || leaf == "..") return overlay::open_in_root(root_, src, O_RDONLY | O_NOFOLLOW);
  int fd = ::openat(dir_fd_.get(), leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw_errno("open", src);
  return UniqueFd(fd);
}

namespace {

// The sha256 of the regular file `it` (read through `files`), recorded in `hashes` when its stat
// data did not change while it was read.
oci::Digest hash_file(SourceFiles& files, const CopyItem& it, ContentHashes* hashes, std::vector<char>& buf) {
  UniqueFd in = files.open(it.src);
  oci::Sha256 fh;
  // The planned size, as the layer's tar takes it: no read is spent finding EOF (a file that
  // changed size meanwhile fails the stat check below, and the layer's own read).
  auto left = static_cast<std::uint64_t>(it.st.st_size);
  while (left > 0) {
    check_cancelled();  // per MiB: hashing a large file must not delay Ctrl-C
    std::size_t n = read_full(in.get(), buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size())), it.src);
    if (n == 0) break;
    fh.update(buf.data(), n);
    left -= n;
  }
  oci::Digest d = fh.finish();
  FileStamp stamp = FileStamp::of(it.st);
  struct stat after {};
  if (hashes && ::fstat(in.get(), &after) == 0 && FileStamp::of(after) == stamp) hashes->put(stamp, d);
  return d;
}

// Below this many bytes to hash, threads cost more than they save.
constexpr std::uint64_t kParallelHashBytes = 32ull << 20;
// A batch is one thread's unit of work: consecutive items (a plan lists a directory's entries
// together, so one SourceFiles keeps its directory open) up to this many bytes or files.
constexpr std::uint64_t kBatchBytes = 16ull << 20;
constexpr std::size_t kBatchFiles = 256;

// The hashes of the plan's regular files that `hashes` does not know, computed on several
// threads when there is enough to read: on a cold runner (an empty store, a fresh checkout)
// hashing the context is most of a fully cached build's time. Indexed like plan.items.
std::vector<std::optional<oci::Digest>> prehash(int src_root, const CopyPlan& plan, ContentHashes* hashes) {
  std::vector<std::optional<oci::Digest>> out(plan.items.size());
  std::vector<std::pair<std::size_t, std::size_t>> batches;  // [first, last) item indexes
  std::uint64_t total = 0, in_batch = 0;
  std::size_t files_in_batch = 0, first = 0;
  bool open = false;
  for (std::size_t i = 0; i < plan.items.size(); ++i) {
    const CopyItem& it = plan.items[i];
    if (!S_ISREG(it.st.st_mode) || (hashes && hashes->find(FileStamp::of(it.st)))) continue;
    if (!open) {
      first = i;
      open = true;
    }
    auto size = static_cast<std::uint64_t>(it.st.st_size);
    total += size;
    in_batch += size;
    if (++files_in_batch >= kBatchFiles || in_batch >= kBatchBytes) {
      batches.emplace_back(first, i + 1);
      open = false;
      in_batch = 0;
      files_in_batch = 0;
    }
  }
  if (open) batches.emplace_back(first, plan.items.size());
  if (total < kParallelHashBytes || batches.size() < 2) return out;
  int jobs = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  run_parallel(batches.size(), jobs, [&](std::size_t b) {
    SourceFiles files(src_root);
    std::vector<char> buf(1 << 20);
    for (std::size_t i = batches[b].first; i < batches[b].second; ++i) {
      const CopyItem& it = plan.items[i];
      if (!S_ISREG(it.st.st_mode) || (hashes && hashes->find(FileStamp::of(it.st)))) continue;
      out[i] = hash_file(files, it, hashes, buf);
    }
  });
  return out;
}

}  // namespace

oci::Digest content_key(int src_root, const CopyPlan& plan, const CopySpec& spec, ContentHashes* hashes) {
  std::vector<std::optional<oci::Digest>> hashed = prehash(src_root, plan, hashes);
  oci::Sha256 h;
  std::vector<char> buf(1 << 20);
  auto field = [&h](std::string_view s) {
    h.update(std::to_string(s.size()) + ":");
    h.update(s);
  };
  SourceFiles files(src_root);
  for (const auto& p : plan.parents) field("parent " + p);
  for (std::size_t i = 0; i < plan.items.size(); ++i) {
    const CopyItem& it = plan.items[i];
    check_cancelled();
    std::uint32_t mode = copy_mode(spec, it.st);
    auto [uid, gid] = copy_owner(spec, it.st);
    field(it.lazy_parent ? "parent-of " + it.dest : it.dest);
    field(std::to_string(it.st.st_mode & S_IFMT) + " " + std::to_string(mode) + " " + std::to_string(uid) + ":" +
          std::to_string(gid));
    if (S_ISLNK(it.st.st_mode)) field(it.link_target);
    if (!it.link_to.empty()) field("link " + it.link_to);
    if (S_ISCHR(it.st.st_mode) || S_ISBLK(it.st.st_mode)) field(std::to_string(it.st.st_rdev));
    if (S_ISREG(it.st.st_mode)) {
      if (spec.keep_owner) {  // the capability lands with the file (copy_rules.h)
        UniqueFd in = files.open(it.src);
        if (auto cap = overlay::sys::get_xattr(in.get(), "", std::string(overlay::kCapabilityXattr), it.src))
          field("capability " + *cap);
      }
      if (hashed[i]) {
        field(hashed[i]->str());
      } else if (auto known = hashes ? hashes->find(FileStamp::of(it.st)) : std::nullopt) {
        field(known->str());
      } else {
        field(hash_file(files, it, hashes, buf).str());
      }
    }
  }
  return h.finish();
}

}  // namespace cbuild::builder
