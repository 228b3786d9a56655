#include "tests/support/layer_listing.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"

namespace fs = std::filesystem;

namespace cbuild::test {

std::string layer_listing(const fs::path& layer) {
  oci::TarReader r(oci::FdSource::open(layer), layer.string());
  std::string out;
  static const char* kTypes[] = {"file", "dir", "symlink", "hardlink", "char", "block", "fifo"};
  while (auto e = r.next()) {
    out += e->path + " " + kTypes[static_cast<int>(e->type)] + " " + std::to_string(e->mode) + " " +
           std::to_string(e->uid) + ":" + std::to_string(e->gid) + " " + std::to_string(e->size) +
           (e->link_target.empty() ? "" : " -> " + e->link_target);
    auto xattrs = e->xattrs;
    std::sort(xattrs.begin(), xattrs.end());
    for (const auto& [k, v] : xattrs) {
      out += " " + k + "=";
      for (unsigned char c : v) {
        static const char* kHex = "0123456789abcdef";
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    }
    out += "\n";
  }
  return out;
}

std::vector<std::string> image_layer_listings(const BuildProject& p, const std::string& name, const fs::path& work) {
  p.tree(name, work / "rootfs");
  std::vector<std::string> out;
  for (std::size_t i = 0; fs::exists(work / ("layer" + std::to_string(i))); ++i)
    out.push_back(layer_listing(work / ("layer" + std::to_string(i))));
  return out;
}

std::vector<std::string> docker_layer_listings(const fs::path& work) {
  fs::path saved = work / "docker-save";
  auto manifest = nlohmann::json::parse(read_file(saved / "manifest.json"));
  std::vector<std::string> out;
  for (const auto& l : manifest[0]["Layers"]) out.push_back(layer_listing(saved / l.get<std::string>()));
  return out;
}

}  // namespace cbuild::test
