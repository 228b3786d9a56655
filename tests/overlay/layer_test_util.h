// Building small layers in memory for the applier and differ tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "oci/sinks.h"
#include "oci/tar_entry.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"

namespace cbuild::test {

struct LayerItem {
  oci::TarEntry entry;
  std::string data;
};

inline LayerItem file_item(std::string path, std::string data, std::uint32_t mode = 0644) {
  LayerItem it;
  it.entry.path = std::move(path);
  it.entry.type = oci::TarType::File;
  it.entry.mode = mode;
  it.entry.size = static_cast<std::int64_t>(data.size());
  it.data = std::move(data);
  return it;
}
inline LayerItem dir_item(std::string path, std::uint32_t mode = 0755) {
  LayerItem it;
  it.entry.path = std::move(path);
  it.entry.type = oci::TarType::Dir;
  it.entry.mode = mode;
  return it;
}
inline LayerItem link_item(std::string path, std::string target, bool hard = false) {
  LayerItem it;
  it.entry.path = std::move(path);
  it.entry.type = hard ? oci::TarType::Hardlink : oci::TarType::Symlink;
  it.entry.mode = 0777;
  it.entry.link_target = std::move(target);
  return it;
}

// Writes the items as an uncompressed tar (through TarWriter) into a string.
inline std::string make_tar(const std::vector<LayerItem>& items) {
  oci::BufferSink sink;
  {
    oci::TarWriter w(sink);
    for (const auto& it : items) {
      oci::MemorySource src(it.data);
      w.add(it.entry, &src);
    }
    w.finish();
  }
  return sink.str();
}

// A TarReader over a copy of `tar`.
class OwnedSource : public oci::ByteSource {
 public:
  explicit OwnedSource(std::string s) : s_(std::move(s)), src_(s_) {}
  std::size_t read(std::span<std::byte> out) override { return src_.read(out); }
  using ByteSource::read;

 private:
  std::string s_;
  oci::MemorySource src_;
};

inline std::unique_ptr<oci::TarReader> reader_for(std::string tar) {
  return std::make_unique<oci::TarReader>(std::make_unique<OwnedSource>(std::move(tar)), "test layer");
}

}  // namespace cbuild::test
