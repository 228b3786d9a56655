// A small, deterministic busybox rootfs (from Debian's busybox-static) for build tests: the
// same tree is given to cbuild (as an image in its store) and to docker (as a docker-archive),
// so differential tests start both builders from identical bases.
#pragma once

#include <filesystem>
#include <string>

namespace cbuild::test {

// Creates bin/busybox (+ an applet symlink for every applet), bin/probe (the static test
// program), etc/passwd and etc/group (root, nobody, and an "app" user 1000:1000 in groups app
// and extra), tmp (1777), root, dev, proc, sys, usr/bin, usr/sbin, sbin, var. mtimes are 0.
void make_busybox_rootfs(const std::filesystem::path& root);

// Writes a docker-archive (what `docker save` makes and `docker load` reads) holding the tree
// under `rootfs` as one uncompressed layer, tagged `tag` (e.g. "cbuild-test-busybox:1").
void write_docker_archive(const std::filesystem::path& rootfs, const std::string& tag, const std::filesystem::path& out);

}  // namespace cbuild::test
