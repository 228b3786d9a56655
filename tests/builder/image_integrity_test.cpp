// One image must not be able to poison another in the same store: layers whose content is not
// what the image config's diff_ids say are refused when pulled, loaded or unpacked into a
// snapshot. And a build's base stays whole while the build runs, whatever rmi or prune do.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>

#include "oci/base/fs.h"
#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "overlay/snapshot_store.h"
#include "tests/support/background_command.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

const std::string kBase = "cbuild-test-busybox:1";
const std::string kBaseRef = "docker.io/library/" + kBase;

struct Trusted {
  oci::Manifest manifest;
  std::string config_bytes;
  oci::Digest diff_id;  // of its one layer; also its chain ID
};

Trusted trusted_image(const test::BuildProject& p) {
  auto store = oci::LayoutStore::open(p.root);
  auto d = store->resolve(kBaseRef);
  REQUIRE(d);
  Trusted t;
  t.manifest = oci::Manifest::parse(store->read_blob(d->digest));
  t.config_bytes = store->read_blob(t.manifest.config.digest);
  REQUIRE(t.manifest.layers.size() == 1);
  t.diff_id = oci::Digest::parse(nlohmann::json::parse(t.config_bytes)["rootfs"]["diff_ids"][0].get<std::string>());
  return t;
}

struct Poisoned {
  oci::Descriptor layer;
  oci::Digest real_diff_id;
};

// A manifest naming `evil`'s layer (already in `store`) under the trusted config, tagged `name`.
void tag_poisoned_image(oci::Store& store, const Trusted& t, const Poisoned& evil, const std::string& name) {
  store.put_blob(t.config_bytes);
  oci::Manifest m = t.manifest;
  m.layers = {evil.layer};
  std::string bytes = m.to_json();
  oci::Descriptor d{.media_type = m.media_type, .digest = store.put_blob(bytes), .size = static_cast<std::int64_t>(bytes.size())};
  store.set_tag(name, d);
}

// The attacker's image: the busybox tree plus /evil as its layer, under the trusted image's
// config byte for byte (so it claims the trusted layer's diff_id), tagged `name` in `store`.
Poisoned put_poisoned_image(oci::Store& store, const Trusted& t, const std::string& name) {
  TempDir tree;
  test::make_busybox_rootfs(tree.path() / "rootfs");
  std::ofstream(tree.path() / "rootfs" / "evil") << "attacker's file\n";
  oci::LayerResult layer = oci::write_layer(tree.path() / "rootfs", store);
  REQUIRE(layer.diff_id != t.diff_id);
  Poisoned evil{.layer = layer.descriptor, .real_diff_id = layer.diff_id};
  tag_poisoned_image(store, t, evil, name);
  return evil;
}

void check_names_the_mismatch(const std::string& err, const std::string& ref, const Poisoned& evil, const Trusted& t) {
  CHECK_MESSAGE(err.find(ref) != std::string::npos, err);
  CHECK_MESSAGE(err.find(evil.layer.digest.str()) != std::string::npos, err);
  CHECK_MESSAGE(err.find(evil.real_diff_id.str()) != std::string::npos, err);
  CHECK_MESSAGE(err.find(t.diff_id.str()) != std::string::npos, err);
}

bool has_snapshot(const test::BuildProject& p, const oci::Digest& chain) {
  return fs::exists(p.root / "snapshots" / chain.hex());
}

// A build FROM the trusted base sees only the trusted files.
void check_trusted_base_is_clean(test::BuildProject& p) {
  p.file("Dockerfile", "FROM " + kBase + "\nRUN test ! -e /evil && echo clean > /clean\n");
  auto r = p.build({"-t", "clean:1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
}

}  // namespace

TEST_CASE("integrity: pulling an image whose layer is not its config's diff_id fails and keeps nothing") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  Trusted t = trusted_image(p);
  test::RegistryServer registry;
  const std::string trusted_ref = registry.host() + "/trusted/busybox:1";
  const std::string evil_ref = registry.host() + "/evil/busybox:1";
  auto push = test::run_cbuild({"--root", p.root.string(), "push", kBaseRef, trusted_ref});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);
  TempDir attacker;
  Poisoned evil = [&] {
    auto store = oci::LayoutStore::open(attacker.path());
    return put_poisoned_image(*store, t, evil_ref);
  }();
  push = test::run_cbuild({"--root", attacker.path().string(), "push", evil_ref});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);

  // Into a fresh store, and into the one holding the trusted image.
  TempDir fresh;
  for (const fs::path& root : {fresh.path(), p.root}) {
    auto pull = test::run_cbuild({"--root", root.string(), "pull", evil_ref});
    CHECK(pull.exit_code == 1);
    check_names_the_mismatch(pull.err, evil_ref, evil, t);
    auto store = oci::LayoutStore::open(root);
    CHECK_FALSE(store->resolve(evil_ref));
    CHECK(test::dir_names(root / "snapshots").size() <= 1);  // at most ".tmp"
  }
  // Again with the layer already in the store (left from the refused pull), once through the
  // remembered DiffID and once read back from the blob.
  for (bool forget : {false, true}) {
    if (forget) fs::remove_all(p.root / "cache" / "diff_ids");
    auto pull = test::run_cbuild({"--root", p.root.string(), "pull", evil_ref});
    CHECK(pull.exit_code == 1);
    check_names_the_mismatch(pull.err, evil_ref, evil, t);
  }
  // A build FROM the attacker's image pulls it, and fails the same way.
  p.file("Dockerfile", "FROM " + evil_ref + "\nRUN true\n");
  auto evil_build = p.build({"-t", "evil-child:1"});
  CHECK(evil_build.exit_code == 1);
  CHECK_MESSAGE(evil_build.err.find(evil.layer.digest.str()) != std::string::npos, evil_build.err);
  CHECK_FALSE(has_snapshot(p, t.diff_id));
  check_trusted_base_is_clean(p);

  // The honest image still pulls (its gzip layer streamed through the DiffID check).
  auto ok = test::run_cbuild({"--root", fresh.path().string(), "pull", trusted_ref});
  CHECK_MESSAGE(ok.exit_code == 0, ok.err);
  auto again = test::run_cbuild({"--root", fresh.path().string(), "pull", trusted_ref});
  CHECK_MESSAGE(again.exit_code == 0, again.err);
}

TEST_CASE("integrity: a lazily pulled base whose layer lies fails the build that fetches it") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  Trusted t = trusted_image(p);
  test::RegistryServer registry;
  const std::string evil_ref = registry.host() + "/evil/busybox:1";
  TempDir attacker;
  Poisoned evil = [&] {
    auto store = oci::LayoutStore::open(attacker.path());
    return put_poisoned_image(*store, t, evil_ref);
  }();
  auto push = test::run_cbuild({"--root", attacker.path().string(), "push", evil_ref});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);

  // Config steps only: nothing unpacks the base, so only the check of the layers fetched for
  // the image written to the store stands between the lie and a tagged image. An empty store,
  // so this build fetches the layer (the base pull is lazy).
  test::BuildProject fresh(kBase);
  fs::remove_all(fresh.root);
  fresh.file("Dockerfile", "FROM " + evil_ref + "\nENV X=1\n");
  auto r = fresh.build({"-t", "evil-child:1"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find(evil.layer.digest.str()) != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find(evil.real_diff_id.str()) != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find(t.diff_id.str()) != std::string::npos, r.err);
  CHECK_FALSE(fresh.has_tag("docker.io/library/evil-child:1"));
}

TEST_CASE("integrity: loading an archive whose layer is not its config's diff_id fails and tags nothing") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  Trusted t = trusted_image(p);
  TempDir attacker;
  Poisoned evil = [&] {
    auto store = oci::LayoutStore::open(attacker.path() / "store");
    return put_poisoned_image(*store, t, "docker.io/library/evil:1");
  }();
  // docker-legacy: manifest.json only (docker before 25), so load writes the manifest itself.
  for (std::string format : {"docker", "oci", "docker-legacy"}) {
    CAPTURE(format);
    fs::path archive = attacker.path() / (format + ".tar");
    bool legacy = format == "docker-legacy";
    auto save = test::run_cbuild({"--root", (attacker.path() / "store").string(), "save", "--format",
                                  legacy ? "docker" : format, "-o", archive.string(), "evil:1"});
    REQUIRE_MESSAGE(save.exit_code == 0, save.err);
    if (legacy) {
      // Repacked without index.json and oci-layout: GNU tar's --delete, tried first, mangled
      // some of these archives (later members lost, a blob's bytes changed).
      fs::path tree = attacker.path() / "legacy-tree";
      fs::create_directories(tree);
      auto x = test::run_command({"tar", "-C", tree.string(), "-xf", archive.string()});
      REQUIRE_MESSAGE(x.exit_code == 0, x.err);
      fs::remove(tree / "index.json");
      fs::remove(tree / "oci-layout");
      fs::remove(archive);
      auto c = test::run_command({"tar", "-C", tree.string(), "-cf", archive.string(), "."});
      REQUIRE_MESSAGE(c.exit_code == 0, c.err);
    }
    auto load = test::run_cbuild({"--root", p.root.string(), "load", "-i", archive.string()});
    CHECK(load.exit_code == 1);
    CHECK_MESSAGE(load.err.find("evil") != std::string::npos, load.err);
    check_names_the_mismatch(load.err, "evil", evil, t);
    auto store = oci::LayoutStore::open(p.root);
    CHECK_FALSE(store->resolve("docker.io/library/evil:1"));
  }
  // The refused loads left the layer blob (garbage for gc) and what it decompresses to: an
  // image put in the store directly naming it is refused from that record, before unpacking.
  {
    auto store = oci::LayoutStore::open(p.root);
    REQUIRE(store->stat(evil.layer.digest));
    REQUIRE(fs::exists(p.root / "cache" / "diff_ids" / evil.layer.digest.hex()));
    tag_poisoned_image(*store, t, evil, "docker.io/library/evil:1");
  }
  p.file("Dockerfile", "FROM evil:1\nRUN true\n");
  auto build = p.build({"-t", "evil-child:1"});
  CHECK(build.exit_code == 1);
  CHECK_MESSAGE(build.err.find(evil.real_diff_id.str()) != std::string::npos, build.err);
  CHECK_MESSAGE(build.err.find(t.diff_id.str()) != std::string::npos, build.err);
  CHECK_FALSE(has_snapshot(p, t.diff_id));
  check_trusted_base_is_clean(p);
}

TEST_CASE("integrity: an image put in the store directly is checked when unpacked into a snapshot") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  Trusted t = trusted_image(p);
  Poisoned evil = [&] {
    auto store = oci::LayoutStore::open(p.root);
    return put_poisoned_image(*store, t, "docker.io/library/evil:1");
  }();
  TempDir out;
  auto unpack = test::run_cbuild({"--root", p.root.string(), "unpack", "evil:1", (out.path() / "bundle").string()});
  CHECK(unpack.exit_code == 1);
  check_names_the_mismatch(unpack.err, "evil:1", evil, t);
  CHECK_FALSE(fs::exists(out.path() / "bundle" / "config.json"));

  auto mount = test::run_cbuild({"--root", p.root.string(), "run", "--rm", "evil:1", "true"});
  CHECK(mount.exit_code != 0);
  CHECK_MESSAGE(mount.err.find(t.diff_id.str()) != std::string::npos, mount.err);
  CHECK_FALSE(has_snapshot(p, t.diff_id));

  p.file("Dockerfile", "FROM evil:1\nRUN true\n");
  auto build = p.build({"-t", "evil-child:1"});
  CHECK(build.exit_code == 1);
  CHECK_MESSAGE(build.err.find(evil.layer.digest.str()) != std::string::npos, build.err);
  CHECK_MESSAGE(build.err.find(t.diff_id.str()) != std::string::npos, build.err);
  CHECK_FALSE(has_snapshot(p, t.diff_id));
  CHECK(test::dir_names(p.root / "snapshots" / ".tmp").empty());
  check_trusted_base_is_clean(p);
  CHECK(has_snapshot(p, t.diff_id));
}

TEST_CASE("lease: rmi and prune of the base while a build runs do not take the base's blobs") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  // The RUN waits (at most a minute) for gate/go, which the test creates after rmi and prune:
  // the context is bound live, so the order is certain on any machine.
  p.file("gate/.keep", "");
  p.file("Dockerfile", "FROM " + kBase +
                           "\nRUN --mount=type=bind,source=gate,target=/gate i=0; "
                           "until [ -e /gate/go ] || [ $i -gt 600 ]; do sleep 0.1; i=$((i+1)); done; "
                           "test -e /gate/go && echo built > /built\n");
  auto build = test::BackgroundCommand::cbuild(
      {"--root", p.root.string(), "--progress=plain", "-t", "child:1", p.ctx.string()}, {"TMPDIR=" + p.tmp.string()});
  REQUIRE_MESSAGE(build.wait_for_err({"/gate/go"}, std::chrono::seconds(60)), build.err());
  auto rmi = test::run_cbuild({"--root", p.root.string(), "rmi", kBase});
  CHECK_MESSAGE(rmi.exit_code == 0, rmi.err);
  auto prune = test::run_cbuild({"--root", p.root.string(), "prune", "-a", "-f"});
  CHECK_MESSAGE(prune.exit_code == 0, prune.err);
  p.file("gate/go", "");
  auto status = build.wait(std::chrono::seconds(120));
  REQUIRE(status);
  REQUIRE_MESSAGE(*status == 0, build.err());

  auto store = oci::LayoutStore::open(p.root);
  CHECK_FALSE(store->resolve(kBaseRef));
  auto d = store->resolve("docker.io/library/child:1");
  REQUIRE(d);
  oci::Manifest m = oci::Manifest::parse(store->read_blob(d->digest));
  CHECK(store->stat(m.config.digest));
  REQUIRE(m.layers.size() == 2);
  for (const auto& l : m.layers) CHECK_MESSAGE(store->stat(l.digest), "missing layer " << l.digest.str());
  TempDir out;
  auto save = test::run_cbuild({"--root", p.root.string(), "save", "-o", (out.path() / "child.tar").string(), "child:1"});
  CHECK_MESSAGE(save.exit_code == 0, save.err);
}
