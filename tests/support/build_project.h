// A build project for end-to-end tests through the real `cbuild` binary: a store holding the
// busybox base (busybox_rootfs.h) under a name both cbuild and the docker peer can say FROM
// with, a context folder, and helpers to build and to read back an image (config + the
// flattened file tree). A build's mount points are in the store's tmp/ and anything else it
// puts in a temp dir goes to a TMPDIR inside the project, so a test can tell the mounts its
// own build left (has_mounts_under(dir)) from anybody else's.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/stream.h"
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

  explicit BuildProject(const std::string& base_name) : base(base_name) {
    std::filesystem::create_directories(ctx);
    std::filesystem::create_directories(tmp);
    TempDir tree;
    make_busybox_rootfs(tree.path() / "rootfs");
    auto store = oci::LayoutStore::open(root);
    put_rootfs_image(*store, tree.path() / "rootfs", "docker.io/library/" + base);
  }
  void file(const std::string& rel, const std::string& text) const {
    std::filesystem::create_directories((ctx / rel).parent_path());
    std::ofstream(ctx / rel, std::ios::binary | std::ios::trunc) << text;
  }
  // A context file with mode 0755 (scripts an image runs).
  void executable(const std::string& rel, const std::string& text) const {
    file(rel, text);
    std::filesystem::permissions(ctx / rel, std::filesystem::perms(0755));
  }
  CommandResult build(std::vector<std::string> extra = {}, std::vector<std::string> env = {}) const {
    std::vector<std::string> args{"--root", root.string(), "--progress=plain"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(ctx.string());
    env.push_back("TMPDIR=" + tmp.string());
    return run_cbuild(args, {}, env);
  }
  // The image `name` (a full reference) names: its config and its file tree flattened at
  // `where`; the layer files are written beside it.
  std::pair<nlohmann::json, std::filesystem::path> image(const std::string& name, const std::filesystem::path& where) const {
    auto store = oci::LayoutStore::open(root);
    auto desc = store->resolve(name);
    REQUIRE_MESSAGE(desc, "no tag " << name);
    auto m = oci::Manifest::parse(store->read_blob(desc->digest));
    nlohmann::json config = nlohmann::json::parse(store->read_blob(m.config.digest));
    std::vector<std::filesystem::path> layers;
    int i = 0;
    std::filesystem::create_directories(where.parent_path());
    for (const auto& l : m.layers) {
      std::filesystem::path f = where.parent_path() / ("layer" + std::to_string(i++));
      write_file_atomic(f, read_all(*store->open(l.digest)));
      layers.push_back(f);
    }
    flatten_layers(layers, where);
    return {config, where};
  }
};

}  // namespace cbuild::test
