// Helpers shared by the overlay tests.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "oci/base/fs.h"

namespace cbuild::test {

// True when any line of /proc/self/mountinfo names a mount point under `prefix`.
inline bool has_mounts_under(const std::filesystem::path& prefix) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  const std::string p = prefix.string();
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, dev, root, mnt;
    ls >> id >> parent >> dev >> root >> mnt;
    if (mnt.compare(0, p.size(), p) == 0) return true;
  }
  return false;
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool exists_nofollow(const std::filesystem::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

}  // namespace cbuild::test
