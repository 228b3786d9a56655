// The one project fixture for end-to-end tests through the real `cbuild` binary: a store
// holding the busybox base (busybox_rootfs.h) under a name both cbuild and the docker peer can
// say FROM with, a context folder, and helpers to build and to read back an image (manifest,
// config, the flattened file tree). A build's mount points are in the store's tmp/ and
// anything else it puts in a temp dir goes to a TMPDIR inside the project, so a test can tell
// what its own build left from anybody else's: has_mounts_under(dir), or leftovers() for the
// tests that stop builds midway (interrupts, crashes) and check nothing is left behind.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/stream.h"
#include "tests/support/background_command.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/image_tree.h"
#include "tests/support/run_command.h"
#include "tests/support/store_image.h"

namespace cbuild::test {

struct BuildProject {
  TempDir dir;
  std::filesystem::path root = dir.path() / "store";
  std::filesystem::path ctx = dir.path() / "ctx";
  std::filesystem::path tmp = dir.path() / "tmp";  // the build's TMPDIR
  std::string base;  // the FROM name ("cbuild-test-busybox:1", or the docker peer's)

  explicit BuildProject(const std::string& base_name = "cbuild-test-busybox:1") : base(base_name) {
    std::filesystem::create_directories(ctx);
    std::filesystem::create_directories(tmp);
    TempDir tree;
    make_busybox_rootfs(tree.path() / "rootfs");
    auto store = oci::LayoutStore::open(root);
    put_rootfs_image(*store, tree.path() / "rootfs", "docker.io/library/" + base);
  }

  // A context file with exactly `mode` (whatever the umask).
  void file(const std::string& rel, const std::string& text, mode_t mode = 0644) const {
    std::filesystem::create_directories((ctx / rel).parent_path());
    std::ofstream(ctx / rel, std::ios::binary | std::ios::trunc) << text;
    REQUIRE(::chmod((ctx / rel).c_str(), mode) == 0);
  }
  // A context file with mode 0755 (scripts an image runs).
  void executable(const std::string& rel, const std::string& text) const { file(rel, text, 0755); }
  void dir_mode(const std::string& rel, mode_t mode) const { REQUIRE(::chmod((ctx / rel).c_str(), mode) == 0); }

  // cbuild with --root and the project's TMPDIR; `args` are the rest, the context included.
  CommandResult cbuild(std::vector<std::string> args, const std::string& input = {},
                       std::vector<std::string> env = {}) const {
    args.insert(args.begin(), {"--root", root.string()});
    return run_cbuild(args, input, with_tmpdir(std::move(env)));
  }
  // The default command (build) of the context, with `extra` flags.
  CommandResult build(const std::vector<std::string>& extra = {}, std::vector<std::string> env = {}) const {
    return run_cbuild(build_args(extra), {}, with_tmpdir(std::move(env)));
  }
  // build(), but a build still running after `timeout` is killed (its group) and reported as
  // exit code -1 with what it printed, so a hang fails the test instead of hanging it.
  CommandResult build_within(std::chrono::seconds timeout, const std::vector<std::string>& extra = {},
                             std::vector<std::string> env = {}) const {
    BackgroundCommand cmd = start(extra, std::move(env));
    std::optional<int> status = cmd.wait(timeout);
    CommandResult r{.exit_code = status.value_or(-1), .out = cmd.out(), .err = cmd.err()};
    if (!status) r.err += "\n[test: killed after " + std::to_string(timeout.count()) + " s]\n";
    return r;
  }
  // build() in the background.
  BackgroundCommand start(const std::vector<std::string>& extra = {}, std::vector<std::string> env = {}) const {
    return BackgroundCommand::cbuild(build_args(extra), with_tmpdir(std::move(env)));
  }

  std::optional<oci::Descriptor> tag(const std::string& name) const { return oci::LayoutStore::open(root)->resolve(name); }
  bool has_tag(const std::string& name) const { return tag(name).has_value(); }
  std::size_t tags() const { return oci::LayoutStore::open(root)->tags().size(); }
  // The manifest the tag `name` (a full reference) names.
  oci::Manifest manifest(const std::string& name) const {
    auto desc = tag(name);
    REQUIRE_MESSAGE(desc, "no tag " << name);
    return manifest_of(desc->digest);
  }
  oci::Manifest manifest_of(const oci::Digest& digest) const {
    return oci::Manifest::parse(oci::LayoutStore::open(root)->read_blob(digest));
  }
  nlohmann::json config(const std::string& name) const {
    return nlohmann::json::parse(oci::LayoutStore::open(root)->read_blob(manifest(name).config.digest));
  }
  // The layers [first, last) (all by default) of manifest `m` flattened at `where`; the layer
  // files are written beside it.
  std::filesystem::path tree_of(const oci::Manifest& m, const std::filesystem::path& where, std::size_t first = 0,
                                std::size_t last = SIZE_MAX) const {
    auto store = oci::LayoutStore::open(root);
    std::vector<std::filesystem::path> layers;
    std::filesystem::create_directories(where.parent_path());
    for (std::size_t i = first; i < m.layers.size() && i < last; ++i) {
      std::filesystem::path f = where.parent_path() / ("layer" + std::to_string(i));
      write_file_atomic(f, oci::read_all(*store->open(m.layers[i].digest), std::size_t{256} << 20));
      layers.push_back(f);
    }
    flatten_layers(layers, where);
    return where;
  }
  std::filesystem::path tree(const std::string& name, const std::filesystem::path& where, std::size_t first = 0,
                             std::size_t last = SIZE_MAX) const {
    return tree_of(manifest(name), where, first, last);
  }
  // The image `name` (a full reference) names: its config and its file tree flattened at `where`.
  std::pair<nlohmann::json, std::filesystem::path> image(const std::string& name, const std::filesystem::path& where) const {
    return {config(name), tree(name, where)};
  }

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

 private:
  std::vector<std::string> build_args(const std::vector<std::string>& extra) const {
    std::vector<std::string> a{"--root", root.string(), "--progress=plain"};
    a.insert(a.end(), extra.begin(), extra.end());
    a.push_back(ctx.string());
    return a;
  }
  std::vector<std::string> with_tmpdir(std::vector<std::string> env) const {
    env.push_back("TMPDIR=" + tmp.string());
    return env;
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
