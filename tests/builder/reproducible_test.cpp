// Results that must not depend on how the build ran: where the base image came from (pulled by
// the build, by `cbuild pull`, or loaded from an archive), the wall clock when no RUN step
// ran, and what the cache held when --compression changed. Docker is not the reference here:
// these are properties of cbuild's own store and cache, checked through the real binary.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

// The local busybox base of BuildProject; these tests never ask the docker peer.
const char* kBase = "cbuild-test-busybox:1";

oci::Manifest manifest_of(const test::BuildProject& p, const std::string& ref) {
  auto store = oci::LayoutStore::open(p.root);
  auto desc = store->resolve(ref);
  REQUIRE_MESSAGE(desc, "no tag " << ref);
  return oci::Manifest::parse(store->read_blob(desc->digest));
}

// The image ID (config digest) a full reference names.
std::string image_id(const test::BuildProject& p, const std::string& ref) { return manifest_of(p, ref).config.digest.str(); }

std::string manifest_digest(const test::BuildProject& p, const std::string& ref) {
  auto store = oci::LayoutStore::open(p.root);
  auto desc = store->resolve(ref);
  REQUIRE_MESSAGE(desc, "no tag " << ref);
  return desc->digest.str();
}

// The names of the build-cache records: one per step key.
std::set<std::string> step_keys(const test::BuildProject& p) {
  std::set<std::string> out;
  if (fs::exists(p.root / "cache" / "steps"))
    for (const auto& e : fs::directory_iterator(p.root / "cache" / "steps"))
      if (e.path().filename().string()[0] != '.') out.insert(e.path().filename().string());
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("reproducible: a base pulled by the build, by cbuild pull or loaded from an archive gives one image and one set of cache keys") {
  REQUIRE_ROOT();
  // A base with an Env of its own, which the build's words expand against.
  test::BuildProject src(kBase);
  src.file("Dockerfile", "FROM " + src.base + "\nENV FOO=bar\n");
  auto made = src.build({"-t", "envbase:1"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  test::RegistryServer registry;
  std::string remote = registry.host() + "/test/envbase:1";
  auto push = test::run_cbuild({"--root", src.root.string(), "push", "docker.io/library/envbase:1", remote});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);
  TempDir archives;
  std::string docker_tar = (archives.path() / "docker.tar").string(), oci_tar = (archives.path() / "oci.tar").string();
  // skopeo's docker-archive is the legacy `docker save` layout: uncompressed layer tars and no
  // manifest, so the store that loads it holds the same config under another manifest.
  for (const std::string& dest : {"docker-archive:" + docker_tar + ":" + remote, "oci-archive:" + oci_tar + ":" + remote}) {
    auto copy = test::run_command({"skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + remote, dest});
    REQUIRE_MESSAGE(copy.exit_code == 0, copy.err);
  }

  const std::string df = "FROM " + remote + "\nRUN echo \"foo=$FOO\" > /x\nWORKDIR /w$FOO\n";
  const std::vector<std::string> epoch{"SOURCE_DATE_EPOCH=1"};  // the RUN's history time, fixed

  // Pulled by the build itself.
  test::BuildProject by_build(kBase);
  by_build.file("Dockerfile", df);
  auto first = by_build.build({"-t", "out:1"}, epoch);
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  CHECK(first.err.find("pulling") != std::string::npos);
  std::string id = image_id(by_build, "docker.io/library/out:1");
  std::set<std::string> keys = step_keys(by_build);
  CHECK(keys.size() == 2);
  TempDir work;
  auto [config, rootfs] = by_build.image("docker.io/library/out:1", work.path() / "a/rootfs");
  CHECK(test::read_text(rootfs / "x") == "foo=bar\n");
  CHECK(config["config"]["WorkingDir"] == "/wbar");
  // The next build is the same build: every step from the cache, the same image.
  auto second = by_build.build({"-t", "out:1"}, epoch);
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  CHECK(count(second.err, "CACHED") == 2);
  CHECK(image_id(by_build, "docker.io/library/out:1") == id);
  CHECK(step_keys(by_build) == keys);

  // Pulled before, by `cbuild pull`.
  test::BuildProject pulled(kBase);
  auto pull = test::run_cbuild({"--root", pulled.root.string(), "pull", remote});
  REQUIRE_MESSAGE(pull.exit_code == 0, pull.err);
  // Loaded from a docker archive and from an OCI archive of the same image.
  test::BuildProject from_docker(kBase), from_oci(kBase);
  for (auto [p, tar] : {std::pair{&from_docker, docker_tar}, std::pair{&from_oci, oci_tar}}) {
    auto load = test::run_cbuild({"--root", p->root.string(), "load", "-i", tar});
    REQUIRE_MESSAGE(load.exit_code == 0, load.err);
  }
  CHECK(manifest_digest(from_docker, remote) != manifest_digest(pulled, remote));
  CHECK(image_id(from_docker, remote) == image_id(pulled, remote));

  for (auto [what, p] : {std::pair{"cbuild pull", &pulled}, std::pair{"docker archive", &from_docker},
                         std::pair{"oci archive", &from_oci}}) {
    CAPTURE(what);
    p->file("Dockerfile", df);
    auto r = p->build({"-t", "out:1"}, epoch);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.err.find("pulling") == std::string::npos);
    CHECK(image_id(*p, "docker.io/library/out:1") == id);
    CHECK(step_keys(*p) == keys);
  }
}

TEST_CASE("reproducible: a base the build fails to pull is reported once, on its FROM line") {
  REQUIRE_ROOT();
  test::RegistryServer registry;
  test::BuildProject p(kBase);
  // The missing image is also named by a stage the target does not need: only the target's
  // base is asked for.
  p.file("Dockerfile", "FROM " + registry.host() + "/test/unused:1 AS unused\nRUN true\n"
                       "FROM " + registry.host() + "/test/missing:1\nRUN true\n");
  auto r = p.build({"-t", "x:1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("Dockerfile:3: FROM " + registry.host() + "/test/missing:1") != std::string::npos);
  CHECK(count(r.err, "pulling " + registry.host()) == 1);
  CHECK(r.err.find("unused") == std::string::npos);
}
