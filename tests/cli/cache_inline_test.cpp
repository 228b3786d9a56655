// --cache-to type=inline and --cache-from IMAGE through the real binary: the records travel in
// the built image's config (key "cbuild.cache.v1", docs/cache.md), two fresh stores (each
// BuildProject has its own root and context), the real registry and OCI layout directories.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/descriptor.h"
#include "oci/digest.h"
#include "oci/manifest.h"
#include "registry-client/credentials.h"
#include "tests/support/build_output.h"
#include "tests/support/build_project.h"
#include "tests/support/cache_fixtures.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace cbuild {
namespace {

namespace fs = std::filesystem;
using test::cached_steps;
using test::warnings;
using test::image_id;
using test::two_steps_each;
using nlohmann::json;

constexpr const char* kKey = "cbuild.cache.v1";

json without_inline(json config) {
  config.erase(kKey);
  return config;
}

std::vector<std::string> digests(const std::vector<oci::Descriptor>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.digest.str());
  return out;
}

// An OCI layout directory holding one image (-o type=oci,tar=false).
struct Layout {
  fs::path dir;

  fs::path blob(const oci::Digest& d) const { return dir / "blobs" / "sha256" / d.hex(); }
  json index() const { return json::parse(read_file(dir / "index.json")); }
  oci::Manifest manifest() const {
    json i = index();
    REQUIRE(i["manifests"].size() == 1);
    return oci::Manifest::parse(read_file(blob(oci::Digest::parse(i["manifests"][0]["digest"].get<std::string>()))));
  }
  json config() const { return json::parse(read_file(blob(manifest().config.digest))); }
  oci::Descriptor put(const std::string& media_type, const std::string& bytes) const {
    oci::Descriptor d{.media_type = media_type, .digest = oci::Digest::of(bytes), .size = static_cast<std::int64_t>(bytes.size())};
    write_file_atomic(blob(d.digest), bytes);
    return d;
  }
  void name(const oci::Descriptor& d) const {
    json i = index();
    i["manifests"][0] = oci::to_json(d);
    write_file_atomic(dir / "index.json", i.dump());
  }
  // The image again, with `edit` applied to its config (a valid layout again).
  void rewrite_config(const std::function<void(json&)>& edit) const {
    oci::Manifest m = manifest();
    json c = config();
    edit(c);
    m.config = put(m.config.media_type, c.dump());
    name(put(m.media_type, m.to_json()));
  }
  // The image wrapped in an index whose one entry claims `platform`.
  void wrap_in_index(const std::string& platform) const {
    json entry = index()["manifests"][0];
    entry.erase("annotations");
    auto p = oci::Platform::parse(platform);
    entry["platform"] = {{"os", p.os}, {"architecture", p.architecture}};
    json ix{{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", {entry}}};
    name(put("application/vnd.oci.image.index.v1+json", ix.dump()));
  }
};

// SOURCE_DATE_EPOCH: builds that run their RUN steps give the same bytes on every store.
const std::string kEpoch = "SOURCE_DATE_EPOCH=1700000000";

TEST_CASE("--cache-to type=inline: a fresh runner warms from the pushed image itself") {
  REQUIRE_ROOT();
  test::RegistryServer registry;
  std::string img = registry.host() + "/team/app:1";
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b);
  auto ra = a.build({"-t", img, "--push", "--cache-to", "type=inline"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  CHECK(cached_steps(ra.err) == 0);
  json ca = a.config(img);
  REQUIRE(ca.contains(kKey));
  CHECK(ca[kKey]["version"] == 1);
  REQUIRE(ca[kKey]["records"].size() == 5);
  // The records name the image's own step layers, and their configs are the images before the
  // key was added.
  oci::Manifest ma = a.manifest(img);
  std::vector<std::string> layers = digests(ma.layers);
  std::set<std::string> named;
  for (const auto& r : ca[kKey]["records"]) {
    if (r["layer"].is_object()) named.insert(r["layer"]["digest"].get<std::string>());
    CHECK_FALSE(json::parse(r["config"].get<std::string>()).contains(kKey));
  }
  CHECK(named == std::set<std::string>(layers.begin() + 1, layers.end()));

  SUBCASE("--cache-from IMAGE, exporting inline again: every step cached, the same image, no layer pushed") {
    auto rb = b.build({"-t", img, "--push", "--cache-from", img, "--cache-to", "type=inline"});
    REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
    CHECK_MESSAGE(cached_steps(rb.err) == 5, rb.err);
    CHECK(warnings(rb.err).empty());
    CHECK(image_id(rb) == image_id(ra));
    for (const auto& l : layers) CHECK_MESSAGE(rb.err.find("\nexists  " + l + "\n") != std::string::npos, rb.err);
  }
  SUBCASE("type=registry,ref=IMAGE; built without type=inline the image is the same but for the key") {
    auto rb = b.build({"-t", "app:1", "--cache-from", "type=registry,ref=" + img});
    REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
    CHECK_MESSAGE(cached_steps(rb.err) == 5, rb.err);
    CHECK(warnings(rb.err).empty());
    CHECK(digests(b.manifest("docker.io/library/app:1").layers) == layers);
    CHECK(b.config("docker.io/library/app:1") == without_inline(ca));
  }
  SUBCASE("one changed file re-runs only the steps that read it") {
    two_steps_each(b, "changed\n");
    auto rb = b.build({"-t", "app:1", "--cache-from", img});
    REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
    CHECK_MESSAGE(cached_steps(rb.err) == 2, rb.err);  // COPY a.txt and its RUN
    CHECK(warnings(rb.err).empty());
    TempDir t;
    fs::path tree = b.tree("docker.io/library/app:1", t.path() / "tree");
    CHECK(read_file(tree / "a.copy") == "a\n");
    CHECK(read_file(tree / "b.copy") == "changed\n");
  }
  SUBCASE("an image without inline records is a miss with one warning naming it") {
    std::string plain = registry.host() + "/team/plain:1";
    test::BuildProject c;
    two_steps_each(c, "c\n");
    auto rc = c.build({"-t", plain, "--push"});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    auto rb = b.build({"-t", "app:1", "--cache-from", plain});
    REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
    CHECK_MESSAGE(cached_steps(rb.err) == 0, rb.err);
    auto w = warnings(rb.err);
    REQUIRE_MESSAGE(w.size() == 1, rb.err);
    CHECK_MESSAGE(w[0].find("--cache-from " + plain + ": ") != std::string::npos, w[0]);
    CHECK_MESSAGE(w[0].find(kKey) != std::string::npos, w[0]);
    TempDir t;
    fs::path tree = b.tree("docker.io/library/app:1", t.path() / "tree");
    CHECK(read_file(tree / "b.copy") == "b\n");
  }
}

TEST_CASE("--cache-from an image index in the registry reads the inline cache of the build's platform") {
  REQUIRE_ROOT();
  test::RegistryServer registry;
  TempDir t;
  Layout out{t.path() / "img"};
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b);
  auto ra = a.build({"--build-arg", kEpoch, "-o", "type=oci,dest=" + out.dir.string() + ",tar=false", "--cache-to", "type=inline"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  json built = without_inline(out.config());
  std::string img = registry.host() + "/team/multi:1";
  int cached = 0;
  std::string says;
  SUBCASE("an entry for the build's platform") {
    out.wrap_in_index(oci::Platform::host().str());
    cached = 5;
  }
  SUBCASE("no entry for it") {
    out.wrap_in_index(oci::Platform::host().architecture == "s390x" ? "linux/ppc64le" : "linux/s390x");
    says = "no manifest for " + oci::Platform::host().str();
  }
  auto push = test::run_command({"skopeo", "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
                                 "oci:" + out.dir.string(), "docker://" + img});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);
  auto rb = b.build({"--build-arg", kEpoch, "-t", "app:1", "--cache-from", img});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == cached, rb.err);
  auto w = warnings(rb.err);
  if (says.empty()) {
    CHECK_MESSAGE(w.empty(), rb.err);
  } else {
    REQUIRE_MESSAGE(w.size() == 1, rb.err);
    CHECK(w[0].find("--cache-from " + img + ": ") != std::string::npos);
    CHECK_MESSAGE(w[0].find(says) != std::string::npos, w[0]);
  }
  CHECK(b.config("docker.io/library/app:1") == built);
}

TEST_CASE("inline cache with token auth: runner B reads the records of the image it pushes over") {
  REQUIRE_ROOT();
  test::RegistryServer registry(test::RegistryServer::Mode::Token);
  TempDir auth;
  std::string basic = cbuild::registry::base64_encode(registry.user() + ":" + registry.password());
  write_file_atomic(auth.path() / "config.json", json{{"auths", {{registry.host(), {{"auth", basic}}}}}}.dump());
  std::vector<std::string> env{"DOCKER_CONFIG=" + auth.path().string(),
                               "REGISTRY_AUTH_FILE=" + (auth.path() / "config.json").string()};
  std::string img = registry.host() + "/team/app:1";
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b);
  auto ra = a.build({"-t", img, "--push", "--cache-to", "type=inline"}, env);
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  auto rb = b.build({"-t", img, "--push", "--cache-from", img, "--cache-to", "type=inline"}, env);
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == 5, rb.err);
  CHECK(warnings(rb.err).empty());
  CHECK(image_id(rb) == image_id(ra));
}

TEST_CASE("type=inline changes the image by its one config key only, the same bytes every time") {
  REQUIRE_ROOT();
  test::BuildProject a, b, c;
  two_steps_each(a);
  two_steps_each(b);
  two_steps_each(c);
  auto ra = a.build({"--build-arg", kEpoch, "-t", "app:1", "--cache-to", "type=inline"});
  auto rb = b.build({"--build-arg", kEpoch, "-t", "app:1"});
  auto rc = c.build({"--build-arg", kEpoch, "-t", "app:1", "--cache-to", "type=inline"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
  std::string name = "docker.io/library/app:1";
  json ca = a.config(name), cb = b.config(name);
  CHECK(ca.contains(kKey));
  CHECK_FALSE(cb.contains(kKey));
  CHECK(without_inline(ca) == cb);
  CHECK(digests(a.manifest(name).layers) == digests(b.manifest(name).layers));
  CHECK(image_id(ra) != image_id(rb));
  CHECK(image_id(rc) == image_id(ra));  // a fresh store, the same inputs: the same bytes

  SUBCASE("an image built FROM it does not inherit its records") {
    a.file("Dockerfile", "FROM app:1\nENV MORE=1\n");
    auto rd = a.build({"--build-arg", kEpoch, "-t", "app:2"});
    REQUIRE_MESSAGE(rd.exit_code == 0, rd.err);
    CHECK_FALSE(a.config("docker.io/library/app:2").contains(kKey));
    auto re = a.build({"--build-arg", kEpoch, "-t", "app:3", "--cache-to", "type=inline"});
    REQUIRE_MESSAGE(re.exit_code == 0, re.err);
    json c3 = a.config("docker.io/library/app:3");
    REQUIRE(c3[kKey]["records"].size() == 1);  // ENV MORE=1 only
    CHECK_FALSE(json::parse(c3[kKey]["records"][0]["config"].get<std::string>()).contains(kKey));
  }
}

TEST_CASE("type=inline holds the steps of the final image's stages (mode=min), not of the stages it copies from") {
  REQUIRE_ROOT();
  auto project = [](const test::BuildProject& p) {
    p.file("a.txt", "a\n");
    p.file("Dockerfile", "FROM " + p.base + " AS builder\nCOPY a.txt /a.txt\nRUN cat /a.txt > /out\n"
                         "FROM " + p.base + " AS mid\nCOPY a.txt /mid.txt\n"
                         "FROM mid\nCOPY --from=builder /out /out\nRUN cat /out > /final\n");
  };
  TempDir t;
  Layout out{t.path() / "img"};
  test::BuildProject a, b;
  project(a);
  project(b);
  auto ra = a.build({"--build-arg", kEpoch, "-o", "type=oci,dest=" + out.dir.string() + ",tar=false", "--cache-to", "type=inline"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  json records = out.config()[kKey]["records"];
  // mid's COPY, the final stage's COPY --from (its layer record and the config-only record of
  // its content key, docs/cache.md) and RUN.
  CHECK(records.size() == 4);
  std::vector<std::string> layers = digests(out.manifest().layers);
  int with_layer = 0;
  for (const auto& r : records) {
    if (r["layer"].is_null()) continue;
    ++with_layer;
    CHECK(std::find(layers.begin(), layers.end(), r["layer"]["digest"].get<std::string>()) != layers.end());
  }
  CHECK(with_layer == 3);

  auto rb = b.build({"--build-arg", kEpoch, "-t", "app:1", "--cache-from", "type=local,src=" + out.dir.string()});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  // The builder stage runs again; its output is the same, so the final stage's steps hit.
  CHECK_MESSAGE(cached_steps(rb.err) == 3, rb.err);
  CHECK(warnings(rb.err).empty());
  CHECK(b.config("docker.io/library/app:1") == without_inline(out.config()));
}

TEST_CASE("an inline cache in an OCI layout directory; a broken one is a miss with one warning, never a wrong build") {
  REQUIRE_ROOT();
  TempDir t;
  Layout out{t.path() / "img"};
  test::BuildProject a;
  two_steps_each(a);
  auto ra = a.build({"--build-arg", kEpoch, "-o", "type=oci,dest=" + out.dir.string() + ",tar=false", "--cache-to", "type=inline"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  json built = without_inline(out.config());
  REQUIRE(out.config()[kKey]["records"].size() == 5);
  std::string from = "type=local,src=" + out.dir.string();
  int cached = 0;    // the steps expected to hit
  std::string says;  // what the one warning says; empty: no warning

  SUBCASE("as written: every step cached") { cached = 5; }
  SUBCASE("in an index, the build's platform's manifest") {
    out.wrap_in_index(oci::Platform::host().str());
    cached = 5;
  }
  SUBCASE("in an index without the build's platform") {
    out.wrap_in_index(oci::Platform::host().architecture == "s390x" ? "linux/ppc64le" : "linux/s390x");
    says = "no manifest for " + oci::Platform::host().str();
  }
  SUBCASE("garbage records") {
    out.rewrite_config([](json& c) { c[kKey]["records"] = json::array({{{"key", 7}}}); });
    says = "corrupt";
  }
  SUBCASE("the field is not an object") {
    out.rewrite_config([](json& c) { c[kKey] = "records"; });
    says = "corrupt";
  }
  SUBCASE("a newer format version") {
    out.rewrite_config([](json& c) { c[kKey]["version"] = 2; });
    says = "newer";
  }
  SUBCASE("a record naming a blob that is not one of the image's layers") {
    out.rewrite_config([](json& c) {
      for (auto& r : c[kKey]["records"])
        if (r["layer"].is_object()) {
          r["layer"]["digest"] = "sha256:" + std::string(64, 'e');
          break;
        }
    });
    says = "not one of the image's";
  }
  SUBCASE("a record whose config lies about its layer") {
    out.rewrite_config([](json& c) {
      for (auto& r : c[kKey]["records"])
        if (r["layer"].is_object()) {
          json config = json::parse(r["config"].get<std::string>());
          config["rootfs"]["diff_ids"].back() = "sha256:" + std::string(64, 'e');
          r["config"] = config.dump();
        }
    });
    says = "corrupt";
  }

  test::BuildProject b;
  two_steps_each(b);
  auto rb = b.build({"--build-arg", kEpoch, "-t", "app:1", "--cache-from", from});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == cached, rb.err);
  auto w = warnings(rb.err);
  if (says.empty()) {
    CHECK_MESSAGE(w.empty(), rb.err);
  } else {
    REQUIRE_MESSAGE(w.size() == 1, rb.err);
    CHECK(w[0].find("--cache-from " + from + ": ") != std::string::npos);
    CHECK_MESSAGE(w[0].find(says) != std::string::npos, w[0]);
  }
  CHECK(b.config("docker.io/library/app:1") == built);  // hit or rebuilt, the same image
  TempDir tt;
  fs::path tree = b.tree("docker.io/library/app:1", tt.path() / "tree");
  CHECK(read_file(tree / "a.copy") == "a\n");
  CHECK(read_file(tree / "b.copy") == "b\n");
}

TEST_CASE("--cache-to type=inline refuses what it cannot honour, before any work") {
  test::BuildProject p;
  two_steps_each(p);
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const Case cases[] = {
      {{"-t", "app:1", "--cache-to", "type=inline,mode=max"}, "--cache-to \"type=inline,mode=max\": type=inline holds the final image's steps only (mode=min)"},
      {{"-t", "app:1", "--cache-to", "type=inline,mode=min,compression=zstd", "--compression", "zstd"}, "type=inline takes no compression="},
      {{"-t", "app:1", "--cache-to", "type=inline,ref=localhost:5000/c:1"}, "type=inline takes no ref="},
      {{"--cache-to", "type=inline"}, "--cache-to \"type=inline\": the inline cache travels in the image, and this build outputs none"},
      {{"-t", "app:1", "-o", "type=local,dest=" + (p.ctx.parent_path() / "x").string(), "--cache-to", "type=inline"},
       "the inline cache travels in the image, and this build outputs none"},
      {{"-t", "app:1", "--cache-from", "type=inline"}, "--cache-from \"type=inline\": type=inline is for --cache-to"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.says);
    auto r = p.build(c.args);
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find(c.says) != std::string::npos, r.err);
    CHECK(p.tags() == 1);  // the base only: nothing was built
    CHECK_FALSE(fs::exists(p.ctx.parent_path() / "x"));
  }
}

}  // namespace
}  // namespace cbuild
