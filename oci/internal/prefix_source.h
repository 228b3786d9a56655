// PrefixSource — yields bytes already read from a source, then the rest of that source. Used
// where a decoder had to look at the first bytes of a stream (magic detection, a gzip member
// header) before it knew who reads the stream from there on. Not thread-safe.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "oci/stream.h"

namespace cbuild::oci::internal {

class PrefixSource final : public ByteSource {
 public:
  PrefixSource(std::string prefix, std::unique_ptr<ByteSource> rest) : prefix_(std::move(prefix)), rest_(std::move(rest)) {}
  std::size_t read(std::span<std::byte> out) override {
    if (pos_ < prefix_.size()) {
      std::size_t n = std::min(out.size(), prefix_.size() - pos_);
      std::memcpy(out.data(), prefix_.data() + pos_, n);
      pos_ += n;
      return n;
    }
    return rest_->read(out);
  }
  std::span<const std::byte> read_view(std::span<std::byte> scratch) override {
    if (pos_ < prefix_.size()) return scratch.first(read(scratch));
    return rest_->read_view(scratch);
  }
  using ByteSource::read;

 private:
  std::string prefix_;
  std::size_t pos_ = 0;
  std::unique_ptr<ByteSource> rest_;
};

}  // namespace cbuild::oci::internal
