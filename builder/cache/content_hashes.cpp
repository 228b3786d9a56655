#include "builder/cache/content_hashes.h"

#include <time.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "oci/base/fs.h"

namespace cbuild::builder {

namespace {

// The file: this line, then fixed-size records in host byte order (a local cache, never shared),
// sorted by (dev, ino). Version 1 files were unsorted; they read as empty (a one-time rehash).
constexpr std::string_view kMagic = "cbuild contenthash 2\n";

struct Record {
  std::uint64_t dev, ino;
  std::int64_t size, mtime_ns, ctime_ns;
  std::uint32_t mode, pad;
  unsigned char sha[32];
};
static_assert(sizeof(Record) == 80);

bool key_less(std::uint64_t dev_a, std::uint64_t ino_a, std::uint64_t dev_b, std::uint64_t ino_b) {
  return dev_a != dev_b ? dev_a < dev_b : ino_a < ino_b;
}

Record record_at(const std::string& bytes, std::size_t i) {
  Record r;  // copied out: records after the magic line are not aligned
  std::memcpy(&r, bytes.data() + kMagic.size() + i * sizeof(Record), sizeof r);
  return r;
}

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
}

void ContentHashes::load_locked() const {
  if (loaded_) return;
  loaded_ = true;
  std::optional<std::string> bytes;
  try {
    bytes = read_file_if_exists(file_, 1u << 30);
  } catch (const std::exception&) {
    return;  // unreadable: start empty
  }
  if (!bytes || bytes->compare(0, kMagic.size(), kMagic) != 0) return;
  std::size_t n = (bytes->size() - kMagic.size()) / sizeof(Record);
  // Binary search needs the order the writer promised; a file that breaks it reads as empty.
  for (std::size_t i = 1; i < n; ++i) {
    Record a = record_at(*bytes, i - 1), b = record_at(*bytes, i);
    if (!key_less(a.dev, a.ino, b.dev, b.ino)) return;
  }
  saved_ = std::move(*bytes);
  saved_count_ = n;
}

ContentHashes::Entry ContentHashes::saved_entry(std::size_t i) const {
  Record r = record_at(saved_, i);
  Entry e{.stamp = {.dev = r.dev, .ino = r.ino, .size = r.size, .mtime_ns = r.mtime_ns, .ctime_ns = r.ctime_ns, .mode = r.mode},
          .sha = {}};
  std::memcpy(e.sha, r.sha, sizeof e.sha);
  return e;
}

std::optional<ContentHashes::Entry> ContentHashes::saved_locked(const Key& k) const {
  std::size_t lo = 0, hi = saved_count_;
  while (lo < hi) {
    std::size_t mid = lo + (hi - lo) / 2;
    Record r = record_at(saved_, mid);
    if (key_less(r.dev, r.ino, k.dev, k.ino)) {
      lo = mid + 1;
    } else if (key_less(k.dev, k.ino, r.dev, r.ino)) {
      hi = mid;
    } else {
      return saved_entry(mid);
    }
  }
  return std::nullopt;
}

std::optional<oci::Digest> ContentHashes::find(const FileStamp& s) const {
  std::lock_guard lock(mu_);
  Key k{s.dev, s.ino};
  if (auto it = entries_.find(k); it != entries_.end()) {
    if (!(it->second.stamp == s)) return std::nullopt;
    return from_bytes(it->second.sha);
  }
  load_locked();
  std::optional<Entry> e = saved_locked(k);
  if (!e || !(e->stamp == s)) return std::nullopt;
  return from_bytes(e->sha);
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
      load_locked();
      // The saved records this process did not replace, then this process's settled entries.
      std::vector<Entry> saved;
      saved.reserve(saved_count_);
      for (std::size_t i = 0; i < saved_count_; ++i) {
        Entry e = saved_entry(i);
        if (!entries_.count(Key{e.stamp.dev, e.stamp.ino})) saved.push_back(e);
      }
      keep.reserve(saved.size() + entries_.size());
      for (const Entry& e : saved) keep.push_back(&e);
      for (const auto& [k, e] : entries_)
        if (settled(e.stamp)) keep.push_back(&e);
      if (keep.size() > kMaxEntries) {
        std::nth_element(keep.begin(), keep.begin() + kMaxEntries, keep.end(),
                         [](const Entry* a, const Entry* b) { return a->stamp.ctime_ns > b->stamp.ctime_ns; });
        keep.resize(kMaxEntries);
      }
      std::sort(keep.begin(), keep.end(), [](const Entry* a, const Entry* b) {
        return key_less(a->stamp.dev, a->stamp.ino, b->stamp.dev, b->stamp.ino);
      });
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
