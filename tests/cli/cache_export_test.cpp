// --cache-to / --cache-from through the real binary: two fresh stores (each BuildProject has its
// own root and its own context folder, at other absolute paths), a cache written by one build
// and read by the other, type=local directories and the real registry. The format is
// docs/cache.md.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/digest.h"
#include "oci/manifest.h"
#include "registry-client/credentials.h"
#include "tests/support/build_output.h"
#include "tests/support/build_project.h"
#include "tests/support/cache_fixtures.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"

namespace cbuild {
namespace {

namespace fs = std::filesystem;
using test::cached_steps;
using test::warnings;
using test::image_id;
using test::two_steps_each;
using nlohmann::json;

void multi_stage(const test::BuildProject& p) {
  p.file("a.txt", "a\n");
  p.file("Dockerfile", "FROM " + p.base + " AS builder\nCOPY a.txt /a.txt\nRUN cat /a.txt > /out\n"
                       "FROM " + p.base + "\nCOPY --from=builder /out /out\nRUN cat /out > /final\n");
}

fs::path blob(const fs::path& dir, const oci::Digest& d) { return dir / "blobs" / "sha256" / d.hex(); }

oci::Manifest cache_manifest(const fs::path& dir) {
  json index = json::parse(read_file(dir / "index.json"));
  REQUIRE(index["manifests"].size() == 1);
  CHECK(index["manifests"][0]["artifactType"] == "application/vnd.cbuild.cache.v1+json");
  auto d = oci::Digest::parse(index["manifests"][0]["digest"].get<std::string>());
  return oci::Manifest::parse(read_file(blob(dir, d)));
}

json cache_config(const fs::path& dir) { return json::parse(read_file(blob(dir, cache_manifest(dir).config.digest))); }

// Rewrites the cache at `dir` with `edit` applied to its config blob (a valid artifact again).
void rewrite_config(const fs::path& dir, const std::function<void(json&)>& edit) {
  oci::Manifest m = cache_manifest(dir);
  json config = cache_config(dir);
  edit(config);
  std::string bytes = config.dump();
  m.config.digest = oci::Digest::of(bytes);
  m.config.size = static_cast<std::int64_t>(bytes.size());
  write_file_atomic(blob(dir, m.config.digest), bytes);
  std::string mbytes = m.to_json();
  auto md = oci::Digest::of(mbytes);
  write_file_atomic(blob(dir, md), mbytes);
  json index = json::parse(read_file(dir / "index.json"));
  index["manifests"][0]["digest"] = md.str();
  index["manifests"][0]["size"] = mbytes.size();
  write_file_atomic(dir / "index.json", index.dump());
}

TEST_CASE("--cache-to type=local warms a fresh store: every step cached, the same image") {
  REQUIRE_ROOT();
  TempDir cache;
  fs::path dir = cache.path() / "cache";
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b);
  auto ra = a.build({"--cache-to", "type=local,dest=" + dir.string()});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  CHECK(cached_steps(ra.err) == 0);
  // The records: 5 steps of the final image; the layers are the 4 step layers.
  CHECK(cache_config(dir)["version"] == 1);
  CHECK(cache_config(dir)["records"].size() == 5);
  CHECK(cache_manifest(dir).layers.size() == 4);

  auto rb = b.build({"--cache-from", "type=local,src=" + dir.string()});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == 5, rb.err);
  CHECK(warnings(rb.err).empty());
  CHECK(image_id(rb) == image_id(ra));

  SUBCASE("one changed file re-runs only the steps that read it") {
    test::BuildProject c;
    two_steps_each(c, "changed\n");
    auto rc = c.build({"-t", "app:1", "--cache-from", "type=local,src=" + dir.string()});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK_MESSAGE(cached_steps(rc.err) == 2, rc.err);  // COPY a.txt and its RUN
    CHECK(image_id(rc) != image_id(ra));
    TempDir t;
    fs::path tree = c.tree("docker.io/library/app:1", t.path() / "tree");
    CHECK(read_file(tree / "a.copy") == "a\n");
    CHECK(read_file(tree / "b.copy") == "changed\n");
  }
  SUBCASE("sources are tried in order; a missing one is a warning") {
    test::BuildProject c;
    two_steps_each(c);
    auto rc = c.build({"--cache-from", "type=local,src=" + (cache.path() / "none").string(), "--cache-from",
                       "type=local,src=" + dir.string()});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK_MESSAGE(cached_steps(rc.err) == 5, rc.err);
    auto w = warnings(rc.err);
    REQUIRE(w.size() == 1);
    CHECK(w[0].find("--cache-from type=local,src=" + (cache.path() / "none").string()) != std::string::npos);
  }
}

TEST_CASE("--cache-to mode=min holds the final image's steps, mode=max every stage's") {
  REQUIRE_ROOT();
  TempDir cache;
  fs::path min = cache.path() / "min", max = cache.path() / "max";
  test::BuildProject a;
  multi_stage(a);
  auto ra = a.build({"--cache-to", "type=local,dest=" + min.string(), "--cache-to",
                     "type=local,dest=" + max.string() + ",mode=max"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  // Each also holds the record that answers the COPY --from by the builder stage's key.
  CHECK(cache_config(min)["records"].size() == 3);
  CHECK(cache_config(max)["records"].size() == 5);

  test::BuildProject b;
  multi_stage(b);
  auto rmin = b.build({"--cache-from", "type=local,src=" + min.string()});
  REQUIRE_MESSAGE(rmin.exit_code == 0, rmin.err);
  // The builder stage runs again (its output is the same, so the final stage's steps hit).
  CHECK_MESSAGE(cached_steps(rmin.err) == 2, rmin.err);

  test::BuildProject c;
  multi_stage(c);
  auto rmax = c.build({"--cache-from", "type=local,src=" + max.string()});
  REQUIRE_MESSAGE(rmax.exit_code == 0, rmax.err);
  CHECK_MESSAGE(cached_steps(rmax.err) == 4, rmax.err);
  CHECK(image_id(rmax) == image_id(ra));
}

TEST_CASE("a broken --cache-from is a miss with one warning naming it, never a failed or wrong build") {
  REQUIRE_ROOT();
  TempDir cache;
  fs::path dir = cache.path() / "cache";
  test::BuildProject a;
  two_steps_each(a);
  auto ra = a.build({"--cache-to", "type=local,dest=" + dir.string()});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  std::string from = "type=local,src=" + dir.string();
  // The step whose record is broken (its progress number; 0: the whole cache is unusable).
  // Steps before it hit; it runs; the steps after it may hit again when the step made the very
  // layer the record named (the context files' mtimes fell into the same second).
  int broken_step = 0;
  std::string says;

  SUBCASE("corrupt config blob") {
    write_file_atomic(blob(dir, cache_manifest(dir).config.digest), "{not json");
    says = "size";
  }
  SUBCASE("garbage records, correctly hashed") {
    rewrite_config(dir, [](json& c) { c["records"] = json::array({{{"key", 7}}}); });
    says = "corrupt";
  }
  SUBCASE("a newer format version") {
    rewrite_config(dir, [](json& c) { c["version"] = 2; });
    says = "newer";
  }
  SUBCASE("a record whose config lies about its layer") {
    rewrite_config(dir, [](json& c) {
      for (auto& r : c["records"])
        if (r["layer"].is_object()) {
          json config = json::parse(r["config"].get<std::string>());
          config["rootfs"]["diff_ids"].back() = "sha256:" + std::string(64, 'e');
          r["config"] = config.dump();
        }
    });
    says = "corrupt";
  }
  SUBCASE("a layer blob gone (a registry GC, a half-restored folder)") {
    oci::Manifest m = cache_manifest(dir);
    fs::remove(blob(dir, m.layers.at(2).digest));  // COPY b.txt's layer
    broken_step = 4;
    says = "missing";
  }
  SUBCASE("a layer blob with other bytes") {
    oci::Manifest m = cache_manifest(dir);
    write_file_atomic(blob(dir, m.layers.at(0).digest), "other bytes");
    broken_step = 2;
    says = m.layers.at(0).digest.str();
  }
  SUBCASE("index.json is not JSON") {
    write_file_atomic(dir / "index.json", "{");
    says = "index.json";
  }

  test::BuildProject b;
  two_steps_each(b);
  auto rb = b.build({"-t", "app:1", "--cache-from", from});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  if (broken_step == 0) {
    CHECK_MESSAGE(cached_steps(rb.err) == 0, rb.err);
  } else {
    for (int i = 2; i < broken_step; ++i) CHECK_MESSAGE(rb.err.find("\n#" + std::to_string(i) + " CACHED\n") != std::string::npos, rb.err);
    CHECK_MESSAGE(rb.err.find("\n#" + std::to_string(broken_step) + " DONE") != std::string::npos, rb.err);
  }
  auto w = warnings(rb.err);
  REQUIRE_MESSAGE(w.size() == 1, rb.err);
  CHECK(w[0].find("--cache-from " + from + ": ") != std::string::npos);
  CHECK_MESSAGE(w[0].find(says) != std::string::npos, w[0]);
  TempDir t;
  fs::path tree = b.tree("docker.io/library/app:1", t.path() / "tree");
  CHECK(read_file(tree / "a.copy") == "a\n");
  CHECK(read_file(tree / "b.copy") == "b\n");
  // The store's own cache took nothing broken: the next build without --cache-from is fine.
  auto again = b.build({"-t", "app:1"});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(cached_steps(again.err) == 5);
}

TEST_CASE("a lazy layer whose bytes turn out wrong when fetched fails the build naming the cache, tags nothing") {
  REQUIRE_ROOT();
  TempDir cache;
  fs::path dir = cache.path() / "cache";
  test::BuildProject a;
  two_steps_each(a);
  auto ra = a.build({"--cache-to", "type=local,dest=" + dir.string()});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  // Same size, other bytes: the hit cannot tell without downloading; the fetch can.
  oci::Manifest m = cache_manifest(dir);
  fs::path victim = blob(dir, m.layers.at(3).digest);
  std::string bytes = read_file(victim);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x55);
  write_file_atomic(victim, bytes);

  test::BuildProject b;
  two_steps_each(b);
  auto rb = b.build({"-t", "app:1", "--cache-from", "type=local,src=" + dir.string()});
  CHECK(rb.exit_code == 1);
  CHECK_MESSAGE(rb.err.find("cbuild: error: --cache-from type=local,src=" + dir.string() + ": layer " +
                            m.layers.at(3).digest.str() + " of a cache hit: ") != std::string::npos,
                rb.err);
  CHECK_FALSE(b.has_tag("docker.io/library/app:1"));
  CHECK_FALSE(fs::exists(blob(b.root, m.layers.at(3).digest)));
  // Without that cache the same store builds.
  auto again = b.build({"-t", "app:1"});
  CHECK_MESSAGE(again.exit_code == 0, again.err);
}

TEST_CASE("--cache-to / --cache-from refuse what they cannot honour, before any work") {
  test::BuildProject p;
  two_steps_each(p);
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const Case cases[] = {
      {{"--cache-to", "type=s3"}, "--cache-to \"type=s3\": unsupported type \"s3\""},
      {{"--cache-from", "type=gha"}, "--cache-from \"type=gha\": unsupported type \"gha\""},
      {{"--cache-to", "type=local"}, "type=local needs dest=DIR"},
      {{"--cache-from", "type=local,dest=x"}, "unknown key \"dest\""},
      {{"--cache-to", "type=local,dest=x,mode=all"}, "mode must be min or max"},
      {{"--cache-from", "type=registry,ref=Bad//Ref"}, "--cache-from \"type=registry,ref=Bad//Ref\": \"Bad//Ref\" is not a valid image reference"},
      {{"--cache-to", "UPPER:tag"}, "--cache-to \"UPPER:tag\": \"UPPER:tag\" is not a valid image reference"},
      {{"--cache-to", "type=registry,ref=localhost:5000/c:1,oci-mediatypes=false"}, "oci-mediatypes=false is not supported"},
      {{"--cache-to", "type=registry,ref=localhost:5000/c:1,compression=zstd"},
       "compression=zstd differs from the layers this build writes (--compression gzip)"},
      {{"--cache-to", "type=registry,ref=localhost:5000/c:1,compression=zstd", "--compression", "zstd", "--cache-to",
        "type=local,dest=x,compression=gzip"},
       "compression=gzip differs from the layers this build writes (--compression zstd)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.says);
    auto r = p.build(c.args);
    CHECK(r.exit_code == 2);
    CHECK_MESSAGE(r.err.find(c.says) != std::string::npos, r.err);
    CHECK(!fs::exists(p.ctx.parent_path() / "x"));
  }
}

TEST_CASE("two builds exporting to one --cache-to dest at once leave one complete cache") {
  REQUIRE_ROOT();
  TempDir cache;
  fs::path dir = cache.path() / "cache";
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b, "other\n");
  for (int round = 0; round < 3; ++round) {
    auto ja = a.start({"--cache-to", "type=local,dest=" + dir.string()});
    auto jb = b.start({"--cache-to", "type=local,dest=" + dir.string()});
    REQUIRE(ja.wait(std::chrono::seconds(120)) == 0);
    REQUIRE(jb.wait(std::chrono::seconds(120)) == 0);
    // Whichever won, its every blob is there and a fresh store builds that project fully cached.
    oci::Manifest m = cache_manifest(dir);
    for (const auto& l : m.layers) CHECK(fs::file_size(blob(dir, l.digest)) == static_cast<std::uintmax_t>(l.size));
    CHECK(cache_config(dir)["records"].size() == 5);
    test::BuildProject c, d;
    two_steps_each(c);
    two_steps_each(d, "other\n");
    auto rc = c.build({"--cache-from", "type=local,src=" + dir.string()});
    auto rd = d.build({"--cache-from", "type=local,src=" + dir.string()});
    REQUIRE(rc.exit_code == 0);
    REQUIRE(rd.exit_code == 0);
    CHECK(warnings(rc.err).empty());
    CHECK(warnings(rd.err).empty());
    // One of the two projects is fully cached; both share COPY a.txt and its RUN.
    CHECK(cached_steps(rc.err) + cached_steps(rd.err) == 5 + 2);
  }
}

TEST_CASE("--cache-to type=registry: a fresh store warms from the real registry") {
  REQUIRE_ROOT();
  test::RegistryServer registry;
  std::string ref = registry.host() + "/cache/app:buildcache";
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b);
  auto ra = a.build({"--cache-to", "type=registry,ref=" + ref + ",mode=max"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  auto rb = b.build({"--cache-from", "type=registry,ref=" + ref});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == 5, rb.err);
  CHECK(warnings(rb.err).empty());
  CHECK(image_id(rb) == image_id(ra));

  SUBCASE("two runners exporting to one ref at once leave one complete cache") {
    test::BuildProject c, d;
    two_steps_each(c, "c\n");
    two_steps_each(d, "d\n");
    auto jc = c.start({"--cache-to", "type=registry,ref=" + ref});
    auto jd = d.start({"--cache-to", "type=registry,ref=" + ref});
    REQUIRE(jc.wait(std::chrono::seconds(120)) == 0);
    REQUIRE(jd.wait(std::chrono::seconds(120)) == 0);
    test::BuildProject e, f;
    two_steps_each(e, "c\n");
    two_steps_each(f, "d\n");
    auto re = e.build({"--cache-from", ref});
    auto rf = f.build({"--cache-from", ref});
    REQUIRE_MESSAGE(re.exit_code == 0, re.err);
    REQUIRE_MESSAGE(rf.exit_code == 0, rf.err);
    CHECK(warnings(re.err).empty());
    CHECK(warnings(rf.err).empty());
    CHECK_MESSAGE(cached_steps(re.err) + cached_steps(rf.err) == 5 + 2, re.err << rf.err);
  }
  SUBCASE("a ref that does not exist is a miss with a warning") {
    test::BuildProject c;
    two_steps_each(c);
    auto rc = c.build({"--cache-from", registry.host() + "/cache/none:x"});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK(cached_steps(rc.err) == 0);
    auto w = warnings(rc.err);
    REQUIRE(w.size() == 1);
    CHECK_MESSAGE(w[0].find("--cache-from " + registry.host() + "/cache/none:x: no cache there") != std::string::npos, w[0]);
  }
}

// The final stage reads the builder stage only through a RUN mount, which a hit does not run.
void mounted_stage(const test::BuildProject& p) {
  p.file("a.txt", "a\n");
  p.file("Dockerfile", "FROM " + p.base + " AS builder\nCOPY a.txt /a.txt\nRUN cat /a.txt > /out\n"
                       "FROM " + p.base + "\nRUN --mount=type=bind,from=builder,target=/b cat /b/out > /final\n"
                       "COPY a.txt /again\n");
}

// A RUN after lazy hits of the builder stage fetches the layers below it.
void run_after_lazy_hits(const fs::path& dir, const std::string& isolation) {
  test::BuildProject c;
  mounted_stage(c);
  c.file("Dockerfile", "FROM " + c.base + " AS builder\nCOPY a.txt /a.txt\nRUN cat /a.txt > /out\n"
                       "RUN cat /out /out > /twice\n");
  auto rc = c.build({isolation, "-t", "app:2", "--cache-from", "type=local,src=" + dir.string()});
  REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
  CHECK_MESSAGE(cached_steps(rc.err) == 2, rc.err);
  TempDir t;
  fs::path tree = c.tree("docker.io/library/app:2", t.path() / "tree");
  CHECK(read_file(tree / "twice") == "a\na\n");
}

TEST_CASE("--cache-from hits are lazy: a fresh store gets the final image's layers, not the builder stage's") {
  REQUIRE_ROOT();
  TempDir cache;
  fs::path dir = cache.path() / "max";
  test::BuildProject a, b;
  mounted_stage(a);
  mounted_stage(b);
  auto ra = a.build({"-t", "app:1", "--cache-to", "type=local,dest=" + dir.string() + ",mode=max"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  oci::Manifest image = a.manifest("docker.io/library/app:1");
  oci::Manifest cached = cache_manifest(dir);
  REQUIRE(cached.layers.size() == 4);  // COPY and RUN of each stage
  std::set<oci::Digest> final_layers;
  for (const auto& l : image.layers) final_layers.insert(l.digest);

  auto rb = b.build({"-t", "app:1", "--cache-from", "type=local,src=" + dir.string()});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == 4, rb.err);
  CHECK(b.manifest("docker.io/library/app:1").config.digest == image.config.digest);
  int builder_only = 0;
  for (const auto& l : cached.layers) {
    CAPTURE(l.digest.str());
    bool in_store = fs::exists(blob(b.root, l.digest));
    if (final_layers.count(l.digest)) {
      CHECK(in_store);
    } else {
      ++builder_only;
      CHECK_FALSE(in_store);
    }
  }
  CHECK(builder_only == 2);
  // Records whose layers stayed in the cache are only misses for the store's own cache.
  auto pruned = b.cbuild({"prune"});
  CHECK_MESSAGE(pruned.exit_code == 0, pruned.err);
  auto again = b.build({"-t", "app:1"});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(b.manifest("docker.io/library/app:1").config.digest == image.config.digest);

  run_after_lazy_hits(dir, "--isolation=userns");
}

// The chroot level has no mounts; a non-root cbuild refuses it, so this case is named for the
// rootless suite's "isolation chroot: *" exclusion.
TEST_CASE("isolation chroot: a RUN after lazy --cache-from hits fetches the layers below it") {
  REQUIRE_ROOT();
  TempDir cache;
  fs::path dir = cache.path() / "max";
  test::BuildProject a;
  mounted_stage(a);
  auto ra = a.build({"-t", "app:1", "--cache-to", "type=local,dest=" + dir.string() + ",mode=max"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  run_after_lazy_hits(dir, "--isolation=chroot");
}

TEST_CASE("step keys hold no context path, store path or hostname: two machines export the same records") {
  REQUIRE_ROOT();
  TempDir cache;
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b);
  REQUIRE(a.ctx != b.ctx);
  REQUIRE(a.root != b.root);
  auto ra = a.build({"--cache-to", "type=local,dest=" + (cache.path() / "a").string()});
  auto rb = b.build({"--cache-to", "type=local,dest=" + (cache.path() / "b").string()}, {"HOSTNAME=elsewhere"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK(cached_steps(rb.err) == 0);
  auto keys = [](const json& config) {
    std::vector<std::string> out;
    for (const auto& r : config["records"]) out.push_back(r["key"].get<std::string>() + " <- " + r["parent"].get<std::string>());
    return out;
  };
  CHECK(keys(cache_config(cache.path() / "a")) == keys(cache_config(cache.path() / "b")));
  std::string text = cache_config(cache.path() / "a").dump();
  CHECK(text.find(a.ctx.string()) == std::string::npos);
  CHECK(text.find(a.root.string()) == std::string::npos);
}

TEST_CASE("registry cache with token auth: runner B pulls records, pushes the image without uploading a layer") {
  REQUIRE_ROOT();
  test::RegistryServer registry(test::RegistryServer::Mode::Token);
  TempDir auth;
  json config{{"auths", {{registry.host(), {{"auth", cbuild::registry::base64_encode(registry.user() + ":" + registry.password())}}}}}};
  write_file_atomic(auth.path() / "config.json", config.dump());
  std::vector<std::string> env{"DOCKER_CONFIG=" + auth.path().string(),
                               "REGISTRY_AUTH_FILE=" + (auth.path() / "config.json").string()};
  std::string cache_ref = registry.host() + "/team/app:buildcache";
  test::BuildProject a, b;
  two_steps_each(a);
  two_steps_each(b);
  auto ra = a.build({"-t", registry.host() + "/team/app:1", "--push", "--cache-to", "type=registry,ref=" + cache_ref}, env);
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);

  SUBCASE("anonymous: the cache reads (pull is granted), an export is refused naming --cache-to") {
    test::BuildProject c;
    two_steps_each(c);
    TempDir none;
    std::vector<std::string> anon{"DOCKER_CONFIG=" + none.path().string(),
                                  "REGISTRY_AUTH_FILE=" + (none.path() / "x.json").string()};
    auto rc = c.build({"--cache-from", "type=registry,ref=" + cache_ref}, anon);
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK_MESSAGE(cached_steps(rc.err) == 5, rc.err);
    auto rd = c.build({"--cache-to", "type=registry,ref=" + registry.host() + "/team/mine:c"}, anon);
    CHECK(rd.exit_code == 1);
    CHECK_MESSAGE(rd.err.find("cbuild: error: --cache-to type=registry,ref=" + registry.host() + "/team/mine:c: ") !=
                      std::string::npos,
                  rd.err);
  }
  SUBCASE("with credentials every step hits and the push finds every layer in the registry") {
    auto rb = b.build({"-t", registry.host() + "/team/other:1", "--push", "--cache-from", "type=registry,ref=" + cache_ref}, env);
    REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
    CHECK_MESSAGE(cached_steps(rb.err) == 5, rb.err);
    CHECK(warnings(rb.err).empty());
    CHECK(image_id(rb) == image_id(ra));
    // The pusher logs each blob: the 4 step layers came from the cache repository and are
    // mounted from it, not uploaded (the base layer came from no registry here, so it is).
    oci::Manifest m = a.manifest(registry.host() + "/team/app:1");
    REQUIRE(m.layers.size() == 5);
    for (std::size_t i = 1; i < m.layers.size(); ++i) {
      CAPTURE(m.layers[i].digest.str());
      CHECK_MESSAGE(rb.err.find("\nmounted " + m.layers[i].digest.str() + "\n") != std::string::npos, rb.err);
    }
  }
}

}  // namespace
}  // namespace cbuild
