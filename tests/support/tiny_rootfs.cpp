#include "tests/support/tiny_rootfs.h"

#include <fstream>

namespace cbuild::test {

namespace fs = std::filesystem;

void make_tiny_rootfs(const fs::path& root) {
  for (const char* d : {"bin", "etc", "tmp", "root", "proc", "sys", "dev"}) fs::create_directories(root / d);
  fs::permissions(root / "tmp", fs::perms::all | fs::perms::sticky_bit);
  fs::copy_file(CBUILD_PROBE_BINARY, root / "bin/probe", fs::copy_options::overwrite_existing);
  fs::permissions(root / "bin/probe", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                          fs::perms::others_read | fs::perms::others_exec);
  for (const char* cmd : {"true", "false", "exit", "echo", "cat", "write", "id", "cwd", "env", "hostname", "sleep",
                          "kill-self", "ls", "pid", "mkdir", "rm"})
    fs::create_symlink("probe", root / "bin" / cmd);
  std::ofstream(root / "etc/passwd") << "root:x:0:0:root:/root:/bin/probe\nuser:x:1234:1234::/home/user:/bin/probe\n";
  std::ofstream(root / "etc/group") << "root:x:0:\nuser:x:1234:\nstaff:x:50:user\n";
}

}  // namespace cbuild::test
