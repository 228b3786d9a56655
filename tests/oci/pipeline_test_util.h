// Test helpers for the layer pipeline tests: an in-memory Ingest/Ingester (until the real
// LayoutStore is used) and deterministic data generators.
#pragma once

#include <sys/stat.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/compression.h"
#include "oci/digest.h"
#include "oci/sinks.h"
#include "oci/store.h"

namespace cbuild::test {

// Keeps committed blobs in a map; commit() verifies like the real store does.
class MemoryStore : public oci::Ingester {
 public:
  class MemIngest : public oci::Ingest {
   public:
    explicit MemIngest(MemoryStore& s) : store_(s) {}
    void write(std::span<const std::byte> d) override {
      if (committed_) throw Error(ErrorKind::FailedPrecondition, "write after commit");
      data_.append(reinterpret_cast<const char*>(d.data()), d.size());
    }
    void finish() override { ++finish_calls_; }
    oci::Digest commit(const std::optional<oci::Digest>& expected, std::optional<std::int64_t> size) override {
      oci::Digest got = oci::Digest::of(data_);
      if (expected && *expected != got) throw Error(ErrorKind::DataLoss, "memory ingest: digest mismatch");
      if (size && *size != static_cast<std::int64_t>(data_.size()))
        throw Error(ErrorKind::DataLoss, "memory ingest: size mismatch");
      committed_ = true;
      store_.blobs[got] = data_;
      return got;
    }
    std::int64_t bytes_written() const override { return static_cast<std::int64_t>(data_.size()); }
    int finish_calls() const { return finish_calls_; }

   private:
    MemoryStore& store_;
    std::string data_;
    bool committed_ = false;
    int finish_calls_ = 0;
  };
  std::unique_ptr<oci::Ingest> begin_ingest() override { return std::make_unique<MemIngest>(*this); }
  std::map<oci::Digest, std::string> blobs;
};

// A thread-safe in-memory frame cache that counts its traffic.
class MemoryFrameCache : public oci::FrameCache {
 public:
  bool find(const std::string& key, std::string& out) override {
    std::lock_guard lock(m_);
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    ++hits;
    out = it->second;
    return true;
  }
  void put(const std::string& key, std::string_view compressed) override {
    std::lock_guard lock(m_);
    map_[key] = std::string(compressed);
    ++puts;
  }
  bool find_checkpoint(const std::string& chain, oci::HashCheckpoint& out) override {
    std::lock_guard lock(m_);
    auto it = checkpoints_.find(chain);
    if (it == checkpoints_.end()) return false;
    out = it->second;
    return true;
  }
  // Keeps the checkpoints of a written layer's frames (FrameRecord::checkpoint), as the store's
  // cache does once the layer is committed.
  void record(const oci::FrameRecord& f) {
    std::lock_guard lock(m_);
    if (f.checkpoint) checkpoints_.insert_or_assign(f.chain, *f.checkpoint);
  }
  void set_checkpoint(const std::string& chain, oci::HashCheckpoint cp) {
    std::lock_guard lock(m_);
    checkpoints_.insert_or_assign(chain, std::move(cp));
  }
  std::size_t size() {
    std::lock_guard lock(m_);
    return map_.size();
  }
  int hits = 0, puts = 0;

 private:
  std::mutex m_;
  std::map<std::string, std::string> map_;
  std::map<std::string, oci::HashCheckpoint> checkpoints_;
};

// Deterministic pseudo-random bytes (xorshift) and compressible text.
inline std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::string s(n, '\0');
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x >> 56);
  }
  return s;
}

inline std::string text_bytes(std::size_t n, std::uint64_t seed) {
  static const char* words[] = {"layer ", "image ", "tar ", "digest ", "build ", "the ", "of ", "container ",
                                "compress ", "frame ", "\n", "sha256 ", "registry ", "overlay "};
  std::string s;
  s.reserve(n + 16);
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 7;
  while (s.size() < n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s += words[x % 14];
  }
  s.resize(n);
  return s;
}

inline void write_text_file(const std::filesystem::path& p, const std::string& data, int mode = 0644) {
  oci::FileSink f(p, mode);
  f.write(data);
  f.finish();
  ::chmod(p.c_str(), static_cast<mode_t>(mode));
}

// Runs a shell command with `input` on stdin, returns stdout (tests interop with the system tools).
inline std::string run_filter(const std::string& cmd, const std::string& input) {
  TempDir dir;
  auto in = dir.path() / "in";
  write_text_file(in, input);
  std::string full = cmd + " < " + in.string() + " > " + (dir.path() / "out").string();
  REQUIRE(std::system(full.c_str()) == 0);
  return read_file(dir.path() / "out", 1u << 30);
}

inline std::string decompress_all(const std::string& blob) {
  auto src = oci::open_decompressed(std::make_unique<oci::MemorySource>(blob), "test blob");
  return oci::read_all(*src, 1u << 30);
}

}  // namespace cbuild::test
