#include "builder/content_hashes.h"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "oci/base/fs.h"

namespace cbuild::builder {

namespace {

// The file: this line, then fixed-size records in host byte order (a local cache, never shared).
constexpr std::string_view kMagic = "cbuild contenthash 1\n";

struct Record {
  std::uint64_t dev, ino;
  std::int64_t size, mtime_ns, ctime_ns;
  std::uint32_t mode, pad;
  unsigned char sha[32];
};
static_assert(sizeof(Record) == 80);

std::int64_t ns(const struct timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

void to_bytes(const oci::Digest& d, unsigned char out[32]) {
  auto nib = [](char c) { return static_cast<unsigned char>(c <= '9' ? c - '0' : c - 'a' + 10); };
  const std::string& h = d.hex();
  for (std::size_t i = 0; i < 32; ++i) out[i] = static_cast<unsigned char>(nib(h[2 * i]) << 4 | nib(h[2 * i + 1]));
}

oci::Digest from_bytes(const unsigned char in[32]) {
  static const char* hexd = "0123456789abcdef";
  std::string h(64, '0');
  for (std::size_t i = 0; i < 32; ++i) {
    h[2 * i] = hexd[in[i] >> 4];
    h[2 * i + 1] = hexd[in[i] & 15];
  }
  return oci::Digest::sha256_hex(h);
}

}  // namespace

FileStamp FileStamp::of(const struct stat& st) {
  return FileStamp{.dev = static_cast<std::uint64_t>(st.st_dev),
                   .ino = static_cast<std::uint64_t>(st.st_ino),
                   .size = static_cast<std::int64_t>(st.st_size),
                   .mtime_ns = ns(st.st_mtim),
                   .ctime_ns = ns(st.st_ctim),
                   .mode = static_cast<std::uint32_t>(st.st_mode)};
}

ContentHashes::ContentHashes(std::filesystem::path file, std::optional<std::int64_t> settled_before)
    : file_(std::move(file)) {
  if (settled_before) {
    settled_before_ = *settled_before;
  } else {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    settled_before_ = ns(now) - 2'000'000'000;
  }
  std::optional<std::string> bytes;
  try {
    bytes = read_file_if_exists(file_, 1u << 30);
  } catch (const std::exception&) {
    return;  // unreadable: start empty
  }
  if (!bytes || bytes->compare(0, kMagic.size(), kMagic) != 0) return;
  std::size_t n = (bytes->size() - kMagic.size()) / sizeof(Record);
  entries_.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Record r;
    std::memcpy(&r, bytes->data() + kMagic.size() + i * sizeof(Record), sizeof r);
    Entry e{.stamp = {.dev = r.dev, .ino = r.ino, .size = r.size, .mtime_ns = r.mtime_ns, .ctime_ns = r.ctime_ns, .mode = r.mode},
            .sha = {}};
    std::memcpy(e.sha, r.sha, sizeof e.sha);
    entries_[Key{r.dev, r.ino}] = e;
  }
}

std::optional<oci::Digest> ContentHashes::find(const FileStamp& s) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(Key{s.dev, s.ino});
  if (it == entries_.end() || !(it->second.stamp == s)) return std::nullopt;
  return from_bytes(it->second.sha);
}

void ContentHashes::put(const FileStamp& s, const oci::Digest& d) {
  if (d.algorithm() != "sha256") return;
  Entry e{.stamp = s, .sha = {}};
  to_bytes(d, e.sha);
  std::lock_guard lock(mu_);
  entries_[Key{s.dev, s.ino}] = e;
  if (settled(s)) dirty_ = true;
}

void ContentHashes::save() noexcept {
  try {
    std::vector<const Entry*> keep;
    {
      std::lock_guard lock(mu_);
      if (!dirty_) return;
      keep.reserve(entries_.size());
      for (const auto& [k, e] : entries_)
        if (settled(e.stamp)) keep.push_back(&e);
      if (keep.size() > kMaxEntries) {
        std::nth_element(keep.begin(), keep.begin() + kMaxEntries, keep.end(),
                         [](const Entry* a, const Entry* b) { return a->stamp.ctime_ns > b->stamp.ctime_ns; });
        keep.resize(kMaxEntries);
      }
      std::string out(kMagic);
      out.resize(kMagic.size() + keep.size() * sizeof(Record));
      char* p = out.data() + kMagic.size();
      for (const Entry* e : keep) {
        Record r{.dev = e->stamp.dev, .ino = e->stamp.ino, .size = e->stamp.size, .mtime_ns = e->stamp.mtime_ns,
                 .ctime_ns = e->stamp.ctime_ns, .mode = e->stamp.mode, .pad = 0, .sha = {}};
        std::memcpy(r.sha, e->sha, sizeof r.sha);
        std::memcpy(p, &r, sizeof r);
        p += sizeof r;
      }
      dirty_ = false;
      make_dirs(file_.parent_path());
      write_file_atomic(file_, out);
    }
  } catch (const std::exception&) {
    // A cache that cannot be saved costs the next build a rehash, nothing else.
  }
}

}  // namespace cbuild::builder
