// The store commands end to end through the cbuild binary: images, inspect, history, tag, rmi,
// prune, save and load. Test images are written into the store through the oci API.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/image_config.h"
#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using namespace cbuild::oci;
namespace fs = std::filesystem;
using test::run_cbuild;

namespace {

struct TestImage {
  Descriptor manifest;
  Digest config;
  Digest layer;
};

TestImage make_image(LayoutStore& store, const fs::path& scratch, const std::string& text) {
  fs::create_directories(scratch / "tree" / "etc");
  std::ofstream(scratch / "tree" / "etc" / "hello.txt") << text;
  LayerResult layer = write_layer(scratch / "tree", store);
  ImageConfig cfg;
  cfg.architecture = "amd64";
  cfg.os = "linux";
  cfg.created = rfc3339_utc(1600000000);
  cfg.config.env = {"PATH=/usr/bin:/bin", "GREETING=" + text};
  cfg.config.cmd = std::vector<std::string>{"/bin/sh"};
  cfg.rootfs.diff_ids = {layer.diff_id};
  cfg.history = {History{.created = cfg.created, .created_by = "COPY hello.txt /etc/ # a long command line that is cut"},
                 History{.created = cfg.created, .created_by = "CMD [\"/bin/sh\"]", .empty_layer = true}};
  std::string cj = cfg.to_json();
  Manifest m;
  m.media_type = std::string(media_types::kOciManifest);
  m.config = Descriptor{.media_type = std::string(media_types::kOciConfig), .digest = store.put_blob(cj),
                        .size = static_cast<std::int64_t>(cj.size())};
  m.layers = {layer.descriptor};
  std::string mj = m.to_json();
  return {Descriptor{.media_type = std::string(media_types::kOciManifest), .digest = store.put_blob(mj),
                     .size = static_cast<std::int64_t>(mj.size())},
          m.config.digest, layer.descriptor.digest};
}

// Makes every blob look old enough for prune's grace period.
void age_blobs(const fs::path& root) {
  for (auto& e : fs::directory_iterator(root / "blobs" / "sha256"))
    fs::last_write_time(e.path(), fs::file_time_type::clock::now() - std::chrono::hours(1));
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    auto nl = s.find('\n', start);
    out.push_back(s.substr(start, nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("images, inspect, history, tag, rmi and prune") {
  TempDir t;
  std::string root = (t.path() / "root").string();
  TestImage img;
  {
    auto store = LayoutStore::open(root);
    img = make_image(*store, t.path() / "a", "one");
    store->set_tag("docker.io/library/busybox:1.35", img.manifest);
  }
  std::string id12 = img.config.hex().substr(0, 12);

  auto r = run_cbuild({"--root", root, "images"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto ls = lines(r.out);
  REQUIRE(ls.size() == 2);
  CHECK(ls[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"));
  CHECK(ls[1].starts_with("busybox      1.35      " + id12 + "   "));
  CHECK(ls[1].find("years ago") != std::string::npos);
  r = run_cbuild({"images", "-q", "--root", root});  // global flag after the subcommand
  CHECK(r.out == id12 + "\n");
  r = run_cbuild({"--root", root, "images", "--digests", "--no-trunc"});
  CHECK(r.out.find(img.manifest.digest.str()) != std::string::npos);
  CHECK(r.out.find(img.config.str()) != std::string::npos);

  // Three spellings of one image, and an ID prefix, for inspect.
  for (const std::string& arg : std::vector<std::string>{"busybox:1.35", "library/busybox:1.35", "docker.io/library/busybox:1.35", id12.substr(0, 6),
                          "sha256:" + img.config.hex(), "busybox@" + img.manifest.digest.str()}) {
    r = run_cbuild({"--root", root, "inspect", "--format", "{{.Id}} {{.Config.Env}} {{json .RepoTags}}", arg});
    CHECK_MESSAGE(r.exit_code == 0, arg << ": " << r.err);
    CHECK(r.out == img.config.str() + " [PATH=/usr/bin:/bin GREETING=one] [\"busybox:1.35\"]\n");
  }
  r = run_cbuild({"--root", root, "inspect", "busybox:1.35"});
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j[0]["Id"] == img.config.str());
  CHECK(j[0]["RepoDigests"][0] == "busybox@" + img.manifest.digest.str());
  CHECK(j[0]["RootFS"]["Layers"].size() == 1);
  CHECK(j[0]["Architecture"] == "amd64");
  r = run_cbuild({"--root", root, "inspect", "nosuch"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("cbuild: error: No such image: nosuch:latest") != std::string::npos);
  r = run_cbuild({"--root", root, "inspect", "Bad/Name"});
  CHECK(r.exit_code == 1);

  r = run_cbuild({"--root", root, "history", "busybox:1.35"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  ls = lines(r.out);
  REQUIRE(ls.size() == 3);
  CHECK(ls[0].starts_with("IMAGE          CREATED"));
  CHECK(ls[1].starts_with(id12));
  CHECK(ls[1].find("CMD [\"/bin/sh\"]") != std::string::npos);
  CHECK(ls[1].find("0B") != std::string::npos);
  CHECK(ls[2].starts_with("<missing>"));
  CHECK(ls[2].find("…") != std::string::npos);  // truncated at 45 characters

  r = run_cbuild({"--root", root, "tag", "busybox:1.35", "localhost:5000/mine/bb:v2"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  r = run_cbuild({"--root", root, "tag", "busybox:1.35", "UPPER"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("must be lowercase") != std::string::npos);
  {
    auto store = LayoutStore::open(root);
    REQUIRE(store->resolve("localhost:5000/mine/bb:v2"));
    CHECK(store->resolve("localhost:5000/mine/bb:v2")->digest == img.manifest.digest);
  }
  // rmi by ID refuses while two names point at it; by name untags only.
  r = run_cbuild({"--root", root, "rmi", id12});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("must be forced") != std::string::npos);
  r = run_cbuild({"--root", root, "rmi", "localhost:5000/mine/bb:v2"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "Untagged: localhost:5000/mine/bb:v2\n");
  CHECK(fs::exists(fs::path(root) / "blobs" / "sha256" / img.layer.hex()));

  // prune keeps what tags reach; removes an unreferenced, old blob.
  Digest loose;
  {
    auto store = LayoutStore::open(root);
    loose = store->put_blob("loose");
  }
  age_blobs(root);
  r = run_cbuild({"--root", root, "prune"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("Deleted: " + loose.str()) != std::string::npos);
  CHECK(r.out.find("Total reclaimed space: 5B") != std::string::npos);
  CHECK(fs::exists(fs::path(root) / "blobs" / "sha256" / img.layer.hex()));

  r = run_cbuild({"--root", root, "rmi", "busybox:1.35"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "Untagged: busybox:1.35\nDeleted: " + img.manifest.digest.str() + "\n");
  CHECK(!fs::exists(fs::path(root) / "blobs" / "sha256" / img.layer.hex()));
  CHECK(!fs::exists(fs::path(root) / "blobs" / "sha256" / img.config.hex()));
  r = run_cbuild({"--root", root, "images", "-q"});
  CHECK(r.out.empty());
  r = run_cbuild({"--root", root, "rmi", "busybox:1.35"});
  CHECK(r.exit_code == 1);
}

TEST_CASE("a non-OCI --root is refused with one clear line") {
  TempDir t;
  std::ofstream(t.path() / "file.txt") << "x";
  auto r = run_cbuild({"--root", t.path().string(), "images"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.starts_with("cbuild: error: "));
  CHECK(r.err.find("not an OCI image layout") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

TEST_CASE("save and load round trip in both formats, keeping document bytes") {
  TempDir t;
  std::string src = (t.path() / "src").string();
  TestImage img;
  std::string manifest_bytes, config_bytes;
  {
    auto store = LayoutStore::open(src);
    img = make_image(*store, t.path() / "a", "saved");
    store->set_tag("docker.io/library/busybox:1.35", img.manifest);
    manifest_bytes = store->read_blob(img.manifest.digest);
    config_bytes = store->read_blob(img.config);
  }
  for (std::string format : {"docker", "oci"}) {
    CAPTURE(format);
    std::string archive = (t.path() / ("img-" + format + ".tar")).string();
    auto r = run_cbuild({"--root", src, "save", "-o", archive, "--format", format, "busybox:1.35"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    auto listing = test::run_command({"tar", "-tf", archive});
    CHECK(listing.out.find("index.json") != std::string::npos);
    CHECK(listing.out.find("blobs/sha256/" + img.layer.hex()) != std::string::npos);
    CHECK((listing.out.find("manifest.json") != std::string::npos) == (format == "docker"));
    if (format == "docker") {
      auto mj = test::run_command({"tar", "-xOf", archive, "manifest.json"});
      auto j = nlohmann::json::parse(mj.out);
      CHECK(j[0]["RepoTags"][0] == "busybox:1.35");
      CHECK(j[0]["Config"] == "blobs/sha256/" + img.config.hex());
    } else {
      auto ij = nlohmann::json::parse(test::run_command({"tar", "-xOf", archive, "index.json"}).out);
      CHECK(ij["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:1.35");
      CHECK(ij["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "1.35");
      // skopeo reads the OCI archive.
      auto sk = test::run_command({"skopeo", "inspect", "--raw", "oci-archive:" + archive});
      CHECK_MESSAGE(sk.exit_code == 0, sk.err);
      CHECK(sk.out == manifest_bytes);
    }
    std::string dst = (t.path() / ("dst-" + format)).string();
    r = run_cbuild({"--root", dst, "load", "-i", archive});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out == "Loaded image: busybox:1.35\n");
    auto store = LayoutStore::open(dst);
    auto d = store->resolve("docker.io/library/busybox:1.35");
    REQUIRE(d);
    CHECK(d->digest == img.manifest.digest);  // bytes kept: same digest
    CHECK(store->read_blob(img.manifest.digest) == manifest_bytes);
    CHECK(store->read_blob(img.config) == config_bytes);
    CHECK(store->stat(img.layer));
    // From stdin too, gzip-compressed.
    std::string dst2 = (t.path() / ("dst2-" + format)).string();
    auto gz = test::run_command({"gzip", "-c", archive});
    r = run_cbuild({"--root", dst2, "load"}, gz.out);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out == "Loaded image: busybox:1.35\n");
  }
}

TEST_CASE("load of an old docker archive (layer.tar, no index.json) and of broken archives") {
  TempDir t;
  auto dir = t.path() / "arch";
  fs::create_directories(dir / "tree");
  fs::create_directories(dir / "x" / "layer1");
  std::ofstream(dir / "tree" / "f.txt") << "legacy";
  REQUIRE(test::run_command({"tar", "-C", (dir / "tree").string(), "-cf", (dir / "x" / "layer1" / "layer.tar").string(), "f.txt"}).exit_code == 0);
  std::string layer_tar = read_file(dir / "x" / "layer1" / "layer.tar");
  ImageConfig cfg;
  cfg.architecture = "amd64";
  cfg.os = "linux";
  cfg.rootfs.diff_ids = {Digest::of(layer_tar)};
  std::string cj = cfg.to_json();
  std::ofstream(dir / "x" / (Digest::of(cj).hex() + ".json")) << cj;
  std::ofstream(dir / "x" / "layer1" / "VERSION") << "1.0";
  std::ofstream(dir / "x" / "manifest.json")
      << R"([{"Config":")" << Digest::of(cj).hex() << R"(.json","RepoTags":["legacy/app:v1"],"Layers":["layer1/layer.tar"]}])";
  std::string archive = (t.path() / "legacy.tar").string();
  REQUIRE(test::run_command({"tar", "-C", (dir / "x").string(), "-cf", archive, "."}).exit_code == 0);
  std::string root = (t.path() / "root").string();
  auto r = run_cbuild({"--root", root, "load", "-i", archive});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out == "Loaded image: legacy/app:v1\n");
  r = run_cbuild({"--root", root, "inspect", "--format", "{{.Id}} {{.RootFS.Layers}}", "docker.io/legacy/app:v1"});
  CHECK(r.out == Digest::of(cj).str() + " [" + Digest::of(layer_tar).str() + "]\n");

  // A corrupt blob in an OCI archive: DataLoss, and nothing tagged.
  std::string good = (t.path() / "good.tar").string();
  REQUIRE(run_cbuild({"--root", root, "save", "--format", "oci", "-o", good, "legacy/app:v1"}).exit_code == 0);
  auto ex = t.path() / "ex";
  fs::create_directories(ex);
  REQUIRE(test::run_command({"tar", "-C", ex.string(), "-xf", good}).exit_code == 0);
  {
    std::ofstream(ex / "blobs" / "sha256" / Digest::of(layer_tar).hex(), std::ios::app) << "extra";
  }
  std::string bad = (t.path() / "bad.tar").string();
  REQUIRE(test::run_command({"tar", "-C", ex.string(), "-cf", bad, "."}).exit_code == 0);
  std::string root2 = (t.path() / "root2").string();
  r = run_cbuild({"--root", root2, "load", "-i", bad});
  CHECK(r.exit_code == 1);
  CHECK(r.err.starts_with("cbuild: error: "));
  CHECK(r.err.find("does not match") != std::string::npos);
  CHECK(run_cbuild({"--root", root2, "images", "-q"}).out.empty());
  // Not an archive at all.
  std::ofstream(t.path() / "junk") << "this is not a tar file at all, not even close";
  r = run_cbuild({"--root", root2, "load", "-i", (t.path() / "junk").string()});
  CHECK(r.exit_code == 1);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  r = run_cbuild({"--root", root2, "load", "-i", (t.path() / "missing.tar").string()});
  CHECK(r.exit_code == 1);
  r = run_cbuild({"--root", root2, "save", "-o", (t.path() / "o.tar").string(), "nosuch"});
  CHECK(r.exit_code == 1);
  CHECK(!fs::exists(t.path() / "o.tar"));
}

#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

TEST_CASE("docker load accepts what save writes, and load reads what docker save writes") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  TempDir t;
  std::string root = (t.path() / "root").string();
  TestImage img;
  {
    auto store = LayoutStore::open(root);
    img = make_image(*store, t.path() / "a", "to docker");
    store->set_tag("docker.io/library/cbuild-save-test:1", img.manifest);
  }
  std::string archive = (t.path() / "out.tar").string();
  auto r = run_cbuild({"--root", root, "save", "-o", archive, "cbuild-save-test:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  r = docker->docker({"load", "-i", archive});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("cbuild-save-test:1") != std::string::npos);
  r = docker->docker({"image", "inspect", "--format", "{{.Id}} {{.Config.Env}}", "cbuild-save-test:1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("GREETING=to docker") != std::string::npos);

  // And back: docker's own archive of that image loads into a fresh store with the same config.
  std::string back = (t.path() / "back.tar").string();
  r = docker->docker({"save", "-o", back, "cbuild-save-test:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::string root2 = (t.path() / "root2").string();
  r = run_cbuild({"--root", root2, "load", "-i", back});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out == "Loaded image: cbuild-save-test:1\n");
  r = run_cbuild({"--root", root2, "inspect", "--format", "{{.Id}}", "cbuild-save-test:1"});
  CHECK(r.out == img.config.str() + "\n");
  docker->docker({"rmi", "cbuild-save-test:1"});
}
