// Results that must not depend on how the build ran: where the base image came from (pulled by
// the build, by `cbuild pull`, or loaded from an archive), the wall clock when no RUN step
// ran, and what the cache held when --compression changed. Docker is not the reference here:
// these are properties of cbuild's own store and cache, checked through the real binary.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
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

// Docker (and BuildKit without SOURCE_DATE_EPOCH) writes the wall clock into Created and every
// new history entry, so two builds of the same inputs a second apart give two image IDs even
// when nothing ran. cbuild takes the clock only from a stage's first RUN step on (what RUN
// writes depends on when it ran anyway); the steps before carry the time of what the stage
// starts from — the base image's Created, or the epoch for scratch — in the config and in the
// directories COPY, ADD and WORKDIR create, so that an image without RUN is a function of its
// inputs (stage_runner.h StageEnv::created).
TEST_CASE("reproducible: without RUN two --no-cache builds a second apart give one image, and a changed file another") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("app/a.txt", "alpha\n");
  p.file("app/sub/b.txt", "beta\n");
  auto tar = test::run_command({"tar", "-C", p.ctx.string(), "-cf", (p.ctx / "app.tar").string(), "app"});
  REQUIRE_MESSAGE(tar.exit_code == 0, tar.err);
  // /deep/new/, /w, /unpacked/ (ADD extracts on disk) and the here-document are made by the
  // build, not taken from the context.
  p.file("Dockerfile", "FROM scratch\nCOPY . /app/\nCOPY app/a.txt /deep/new/\nWORKDIR /w\nLABEL x=y\n"
                       "COPY <<EOF /etc/motd\nhello\nEOF\nADD app.tar /unpacked/\n");
  auto build = [&] {
    auto r = p.build({"--no-cache", "-t", "norun:1"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    return manifest_digest(p, "docker.io/library/norun:1");
  };
  std::string first = build();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::string second = build();
  CHECK(second == first);
  TempDir work;
  auto [config, rootfs] = p.image("docker.io/library/norun:1", work.path() / "a/rootfs");
  CHECK(config["created"] == "1970-01-01T00:00:00Z");
  for (const auto& h : config["history"]) CHECK(h["created"] == "1970-01-01T00:00:00Z");

  p.file("app/a.txt", "changed\n");
  CHECK(build() != first);
}

TEST_CASE("reproducible: steps before the first RUN take their times from the base image, whatever the cache holds") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  // A base made at a known time (2001-09-09T01:46:40Z).
  p.file("Dockerfile", "FROM " + p.base + "\nENV B=1\n");
  auto made = p.build({"-t", "timed:1"}, {"SOURCE_DATE_EPOCH=1000000000"});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  const std::string base_time = "2001-09-09T01:46:40Z";

  // The same LABEL step on the same base, first before a RUN (which takes the clock), then in
  // a stage without one, which takes the first one's record: the same time either way.
  p.file("Dockerfile", "FROM timed:1\nLABEL a=b\nRUN true\n");
  auto with_run = p.build({"-t", "withrun:1"});
  REQUIRE_MESSAGE(with_run.exit_code == 0, with_run.err);
  TempDir work;
  auto [run_config, run_root] = p.image("docker.io/library/withrun:1", work.path() / "r/rootfs");
  REQUIRE(run_config["history"].size() == 4);
  CHECK(run_config["history"][2]["created"] == base_time);  // LABEL
  CHECK(run_config["history"][3]["created"] != base_time);  // RUN: the clock, as docker
  CHECK(run_config["created"] == run_config["history"][3]["created"]);

  p.file("Dockerfile", "FROM timed:1\nLABEL a=b\nWORKDIR /w\n");
  auto no_run = p.build({"-t", "norun:1"});
  REQUIRE_MESSAGE(no_run.exit_code == 0, no_run.err);
  auto [config, rootfs] = p.image("docker.io/library/norun:1", work.path() / "n/rootfs");
  CHECK(config["created"] == base_time);
  REQUIRE(config["history"].size() == 4);  // the base's two, then LABEL and WORKDIR
  for (std::size_t i = 1; i < 4; ++i) CHECK(config["history"][i]["created"] == base_time);
  struct stat st {};
  REQUIRE(::lstat((rootfs / "w").c_str(), &st) == 0);
  CHECK(st.st_mtime == 1000000000);

  // FROM alone: the base itself, at its own time.
  p.file("Dockerfile", "FROM timed:1\n");
  auto bare = p.build({"-t", "bare:1"});
  REQUIRE_MESSAGE(bare.exit_code == 0, bare.err);
  CHECK(image_id(p, "docker.io/library/bare:1") == image_id(p, "docker.io/library/timed:1"));
}

TEST_CASE("reproducible: a final stage without RUN is not stamped with the clock by the stages before it that ran one") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM " + p.base + " AS build\nRUN echo made > /out\n"
                       "FROM scratch\nCOPY --from=build /out /out\nLABEL x=y\n");
  auto r = p.build({"-t", "multi:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, rootfs] = p.image("docker.io/library/multi:1", work.path() / "m/rootfs");
  CHECK(test::read_text(rootfs / "out") == "made\n");
  CHECK(config["created"] == "1970-01-01T00:00:00Z");
  for (const auto& h : config["history"]) CHECK(h["created"] == "1970-01-01T00:00:00Z");
}

TEST_CASE("reproducible: SOURCE_DATE_EPOCH wins over the cache a build without it left") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo x > /x\nLABEL l=1\n");
  auto plain = p.build({"-t", "sde:1"});
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
  auto pinned = p.build({"-t", "sde:1"}, {"SOURCE_DATE_EPOCH=5"});
  REQUIRE_MESSAGE(pinned.exit_code == 0, pinned.err);
  TempDir work;
  auto [config, rootfs] = p.image("docker.io/library/sde:1", work.path() / "s/rootfs");
  CHECK(config["created"] == "1970-01-01T00:00:05Z");
  CHECK(config["history"].back()["created"] == "1970-01-01T00:00:05Z");
  struct stat st {};
  REQUIRE(::lstat((rootfs / "x").c_str(), &st) == 0);
  CHECK(st.st_mtime <= 5);
  // And a third build with it is all from the cache.
  auto again = p.build({"-t", "sde:1"}, {"SOURCE_DATE_EPOCH=5"});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(count(again.err, "CACHED") == 2);
}

TEST_CASE("reproducible: --compression is what the layers ship in, whatever the cache and the COPY layer memo hold") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("data/a.txt", "alpha\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY data /data\nRUN echo r > /r\n");
  // Files settled 2 s before the build: a --no-cache COPY of them may take the layer the
  // store has (builder/cache/layer_memo.h), which must then be one of the asked compression.
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  const std::string gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
  const std::string zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
  const std::string tar = "application/vnd.oci.image.layer.v1.tar";
  struct Run {
    std::vector<std::string> flags;
    std::string media_type;
  };
  const Run runs[] = {
      {{}, gzip},
      {{"--no-cache", "--compression", "zstd"}, zstd},
      {{"--compression", "gzip"}, gzip},
      {{"--compression", "uncompressed"}, tar},
      {{"--no-cache"}, gzip},
      {{"--compression", "zstd"}, zstd},
      {{"--compression", "uncompressed"}, tar},
  };
  std::string copy_diff_id;
  for (const Run& run : runs) {
    std::string flags;
    for (const auto& f : run.flags) flags += f + " ";
    CAPTURE(flags);
    std::vector<std::string> args = run.flags;
    args.insert(args.end(), {"-t", "comp:1"});
    auto r = p.build(args);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    oci::Manifest m = manifest_of(p, "docker.io/library/comp:1");
    REQUIRE(m.layers.size() == 3);
    CHECK(m.layers[1].media_type == run.media_type);  // COPY
    CHECK(m.layers[2].media_type == run.media_type);  // RUN
    TempDir work;
    auto [config, rootfs] = p.image("docker.io/library/comp:1", work.path() / "c/rootfs");
    CHECK(test::read_text(rootfs / "data/a.txt") == "alpha\n");
    CHECK(test::read_text(rootfs / "r") == "r\n");
    // The same COPY layer every time, only encoded differently (a RUN rerun gives /r a new mtime).
    if (copy_diff_id.empty()) copy_diff_id = config["rootfs"]["diff_ids"][1].get<std::string>();
    CHECK(config["rootfs"]["diff_ids"][1] == copy_diff_id);
  }
  auto bad = p.build({"--compression", "lz4", "-t", "comp:2"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--compression") != std::string::npos);
}

TEST_CASE("reproducible: appending a RUN step keeps the cache of the steps before it") {
  REQUIRE_ROOT();
  test::BuildProject p(kBase);
  p.file("data/a.txt", "alpha\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY data /data\nWORKDIR /w\n");
  auto first = p.build({"-t", "grow:1"});
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY data /data\nWORKDIR /w\nRUN echo r > /r\n");
  auto second = p.build({"-t", "grow:1"});
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  CHECK(count(second.err, "CACHED") == 2);
}
