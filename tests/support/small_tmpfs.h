// SmallTmpfs — a tmpfs of a given size mounted on a fresh directory for the test's scope: the
// "full disk" of the store's ResourceExhausted tests. Needs root (REQUIRE_ROOT first); the
// mount is lazily detached on destruction, so a failing test leaves nothing mounted.
#pragma once

#include <sys/mount.h>

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "oci/base/fs.h"

namespace cbuild::test {

class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& size) : path_(dir_.path() / "small") {
    std::filesystem::create_directories(path_);
    REQUIRE(::mount("tmpfs", path_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0);
  }
  ~SmallTmpfs() { ::umount2(path_.c_str(), MNT_DETACH); }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  TempDir dir_;
  std::filesystem::path path_;
};

}  // namespace cbuild::test
