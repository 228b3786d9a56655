// A tiny rootfs for sandbox and RUN tests: the static cbuild_probe program as /bin/probe plus
// symlinks naming its subcommands (/bin/true, /bin/echo, /bin/id, …), /etc/passwd and
// /etc/group (root, and "user" 1234:1234 in group "staff" 50), /tmp (1777). No shell.
#pragma once

#include <filesystem>

namespace cbuild::test {

void make_tiny_rootfs(const std::filesystem::path& root);

}  // namespace cbuild::test
