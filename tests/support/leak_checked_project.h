// A throwaway build project for end-to-end tests through the cbuild binary: a store holding the
// busybox test base (tagged docker.io/library/<base>), a context folder, a private TMPDIR for
// cbuild, and the checks that a build — finished, failed or interrupted — left nothing behind.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "tests/support/background_command.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/run_command.h"
#include "tests/support/store_image.h"

namespace cbuild::test {

struct LeakCheckedProject {
  TempDir dir;
  std::filesystem::path root = dir.path() / "store";
  std::filesystem::path ctx = dir.path() / "ctx";
  std::filesystem::path tmp = dir.path() / "tmp";  // cbuild's TMPDIR
  std::string base = "cbuild-test-busybox:1";

  LeakCheckedProject() {
    std::filesystem::create_directories(ctx);
    std::filesystem::create_directories(tmp);
    TempDir tree;
    make_busybox_rootfs(tree.path() / "rootfs");
    auto store = oci::LayoutStore::open(root);
    put_rootfs_image(*store, tree.path() / "rootfs", "docker.io/library/" + base);
  }
  void file(const std::string& rel, const std::string& text) const {
    std::filesystem::create_directories((ctx / rel).parent_path());
    std::ofstream(ctx / rel, std::ios::binary) << text;
  }
  std::vector<std::string> env(std::vector<std::string> extra = {}) const {
    extra.push_back("TMPDIR=" + tmp.string());
    return extra;
  }
  std::vector<std::string> args(const std::vector<std::string>& extra) const {
    std::vector<std::string> a{"--root", root.string(), "--progress=plain"};
    a.insert(a.end(), extra.begin(), extra.end());
    a.push_back(ctx.string());
    return a;
  }
  CommandResult build(const std::vector<std::string>& extra = {}, const std::vector<std::string>& extra_env = {}) const {
    return run_cbuild(args(extra), {}, env(extra_env));
  }
  // build(), but a build still running after `timeout` is killed (its group) and reported as
  // exit code -1 with what it printed, so a hang fails the test instead of hanging it.
  CommandResult build_within(std::chrono::seconds timeout, const std::vector<std::string>& extra = {},
                             const std::vector<std::string>& extra_env = {}) const {
    BackgroundCommand cmd = start(extra, extra_env);
    std::optional<int> status = cmd.wait(timeout);
    CommandResult r{.exit_code = status.value_or(-1), .out = cmd.out(), .err = cmd.err()};
    if (!status) r.err += "\n[test: killed after " + std::to_string(timeout.count()) + " s]\n";
    return r;
  }
  BackgroundCommand start(const std::vector<std::string>& extra = {}, const std::vector<std::string>& extra_env = {}) const {
    return BackgroundCommand::cbuild(args(extra), env(extra_env));
  }
  bool has_tag(const std::string& name) const { return oci::LayoutStore::open(root)->resolve(name).has_value(); }

  // What a stopped build must not leave: mounts into the store (its mount points are in the
  // store's tmp/), processes whose command line names the project (cbuild, its sandbox PID 1)
  // or `token` (the RUN command), ingest files, scratch dirs and leases in the store, temp dirs
  // in cbuild's TMPDIR. Empty when clean.
  std::vector<std::string> leftovers(const std::string& token) const {
    std::vector<std::string> out;
    for (auto& m : mounts_mentioning(root.string())) out.push_back("mounted: " + m);
    for (auto& p : processes_mentioning(dir.path().string())) out.push_back("process: " + p);
    if (!token.empty())
      for (auto& p : processes_mentioning(token)) out.push_back("process: " + p);
    for (auto& n : dir_names(root / "tmp")) out.push_back("store tmp: " + n);
    for (auto& n : dir_names(root / "snapshots" / ".tmp")) out.push_back("snapshot tmp: " + n);
    for (auto& n : dir_names(tmp)) out.push_back("TMPDIR: " + n);
    for (auto& n : dir_names(root / "leases")) out.push_back("lease: " + n);
    return out;
  }
};

// One string of the lines in `v`, for failure messages.
inline std::string lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v) s += l + "\n";
  return s;
}

// How many lines of `text` start with `prefix`.
inline int count_lines_starting(const std::string& text, const std::string& prefix) {
  int n = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    if (text.compare(at, prefix.size(), prefix) == 0) ++n;
    at = nl + 1;
  }
  return n;
}

}  // namespace cbuild::test
