// An in-memory oci::Store for tests that need a store but not the on-disk layout.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "oci/base/error.h"
#include "oci/sinks.h"
#include "oci/store.h"

namespace cbuild::test {

// Blobs in memory, verified on commit and on read, like the real store; tags in a map.
class BlobMap final : public oci::Store {
 public:
  std::optional<std::int64_t> stat(const oci::Digest& d) const override {
    std::lock_guard g(mu_);
    auto it = blobs_.find(d.str());
    if (it == blobs_.end()) return std::nullopt;
    return static_cast<std::int64_t>(it->second.size());
  }
  std::unique_ptr<oci::ByteSource> open(const oci::Digest& d) const override {
    std::lock_guard g(mu_);
    auto it = blobs_.find(d.str());
    if (it == blobs_.end()) throw Error(ErrorKind::NotFound, "blob " + d.str() + " not found");
    return std::make_unique<oci::MemorySource>(it->second);  // map nodes are stable
  }
  std::unique_ptr<oci::Ingest> begin_ingest() override { return std::make_unique<Mem>(*this); }
  std::optional<oci::Descriptor> resolve(std::string_view name) const override {
    std::lock_guard g(mu_);
    auto it = tags_.find(std::string(name));
    if (it == tags_.end()) return std::nullopt;
    return it->second;
  }
  void set_tag(std::string_view name, const oci::Descriptor& d) override {
    std::lock_guard g(mu_);
    tags_[std::string(name)] = d;
  }
  bool remove_tag(std::string_view name) override {
    std::lock_guard g(mu_);
    return tags_.erase(std::string(name)) > 0;
  }
  std::vector<std::pair<std::string, oci::Descriptor>> tags() const override {
    std::lock_guard g(mu_);
    return {tags_.begin(), tags_.end()};
  }
  std::size_t size() const {
    std::lock_guard g(mu_);
    return blobs_.size();
  }

 private:
  class Mem final : public oci::Ingest {
   public:
    explicit Mem(BlobMap& s) : s_(s) {}
    void write(std::span<const std::byte> d) override { data_.append(reinterpret_cast<const char*>(d.data()), d.size()); }
    void finish() override {}
    oci::Digest commit(const std::optional<oci::Digest>& expected, std::optional<std::int64_t> size) override {
      oci::Digest got = oci::Digest::of(data_);
      if ((expected && *expected != got) || (size && *size != static_cast<std::int64_t>(data_.size())))
        throw Error(ErrorKind::DataLoss, "ingest: digest or size mismatch");
      std::lock_guard g(s_.mu_);
      s_.blobs_.emplace(got.str(), std::move(data_));
      return got;
    }
    std::int64_t bytes_written() const override { return static_cast<std::int64_t>(data_.size()); }

   private:
    BlobMap& s_;
    std::string data_;
  };
  mutable std::mutex mu_;
  std::map<std::string, std::string> blobs_;
  std::map<std::string, oci::Descriptor> tags_;
};

}  // namespace cbuild::test
