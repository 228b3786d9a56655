#include "tests/support/image_tree.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "oci/digest.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "overlay/applier.h"

namespace fs = std::filesystem;

namespace cbuild::test {

void flatten_layers(const std::vector<fs::path>& layers, const fs::path& root) {
  fs::create_directories(root);
  for (const auto& l : layers) {
    oci::TarReader reader(oci::FdSource::open(l), l.string());
    overlay::apply_layer(reader, root, overlay::ApplyOptions{.mode = overlay::ApplyMode::Flatten});
  }
}

std::string tree_listing(const fs::path& root, const std::vector<std::string>& ignore) {
  std::vector<std::string> lines;
  auto skipped = [&](const std::string& rel) {
    for (const auto& i : ignore)
      if (rel == i || (rel.size() > i.size() && rel.compare(0, i.size(), i) == 0 && rel[i.size()] == '/')) return true;
    return false;
  };
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    // lexically: fs::relative() resolves symlinks, which names a link by where it points on the host.
    std::string rel = it->path().lexically_relative(root).string();
    if (skipped(rel)) {
      std::error_code ec;
      if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
      continue;
    }
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::string type, detail;
    switch (st.st_mode & S_IFMT) {
      case S_IFREG: {
        type = "file";
        std::ifstream in(it->path(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        detail = oci::Digest::of(ss.str()).hex().substr(0, 16);
        break;
      }
      case S_IFDIR: type = "dir"; break;
      case S_IFLNK: type = "symlink"; detail = fs::read_symlink(it->path()).string(); break;
      case S_IFCHR: type = "char"; detail = std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev)); break;
      case S_IFBLK: type = "block"; detail = std::to_string(major(st.st_rdev)) + "," + std::to_string(minor(st.st_rdev)); break;
      case S_IFIFO: type = "fifo"; break;
      default: type = "other";
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    std::ostringstream line;
    line << rel << " " << type << " " << (type == "symlink" ? "-" : mode) << " " << st.st_uid << ":" << st.st_gid
         << " " << (type == "file" ? std::to_string(st.st_size) : "-") << " " << detail;
    lines.push_back(line.str());
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (auto& l : lines) out += l + "\n";
  return out;
}

std::string listing_diff(const std::string& expected, const std::string& actual) {
  auto split = [](const std::string& s) {
    std::set<std::string> lines;
    std::istringstream in(s);
    std::string l;
    while (std::getline(in, l)) lines.insert(l);
    return lines;
  };
  auto a = split(expected), b = split(actual);
  std::string out;
  for (auto& l : a)
    if (!b.count(l)) out += "- " + l + "\n";
  for (auto& l : b)
    if (!a.count(l)) out += "+ " + l + "\n";
  return out;
}

}  // namespace cbuild::test
