// The bytes a registry cache moves, counted by a proxy in front of the real registry: runner A
// (its own store) pushes the base, then builds with --cache-to and --push; runner B starts
// from an EMPTY store and builds the same sources with --cache-from. A fully cached build with
// --push downloads and uploads no layer; one into the local store fetches exactly the final
// image's layers; whatever reads a lazily held layer later fetches it, verified, and one whose
// registry is gone fails naming the layer and the registry (docs/cache.md, lazy import).
#include <doctest/doctest.h>

#include <filesystem>
#include <optional>
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
#include "tests/support/fault_proxy.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"

namespace cbuild {
namespace {

namespace fs = std::filesystem;
using test::cached_steps;
using test::done_steps;

// The last step reads a build argument, so a build can miss there alone, after hits.
void project(const test::BuildProject& p, const std::string& base) {
  p.file("a.txt", "a\n");
  p.file("b.txt", "b\n");
  p.file("Dockerfile", "FROM " + base + "\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nARG X=1\nRUN echo $X > /x\n");
}

// The digests of the blobs whose bytes came back to GETs, those whose bytes went up in a
// monolithic upload (PUT ?digest=), and the body bytes of chunked uploads (PATCH).
struct Moved {
  std::set<std::string> fetched;
  std::set<std::string> uploaded;
  std::size_t chunked = 0;
};

Moved moved(const test::FaultProxy& proxy) {
  Moved m;
  for (const auto& s : proxy.seen()) {
    if (s.method == "GET" && s.response_body > 0) {
      auto at = s.path.find("/blobs/sha256:");
      if (at != std::string::npos) m.fetched.insert(s.path.substr(at + 7, 71));
    }
    if (s.path.find("/blobs/uploads/") == std::string::npos || s.request_body == 0) continue;
    if (auto at = s.path.find("digest=sha256:"); s.method == "PUT" && at != std::string::npos)
      m.uploaded.insert(s.path.substr(at + 7, 71));
    else
      m.chunked += s.request_body;
  }
  return m;
}

std::set<std::string> digests(const std::vector<oci::Descriptor>& v) {
  std::set<std::string> out;
  for (const auto& d : v) out.insert(d.digest.str());
  return out;
}

std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += x + " ";
  return out;
}

TEST_CASE("a fully cached build with --push from an empty store moves no layer bytes") {
  REQUIRE_ROOT();
  test::RegistryServer registry;
  std::optional<test::FaultProxy> proxy;
  proxy.emplace(registry.port());
  const std::string reg = proxy->host();
  const std::string base = reg + "/lib/base:1";
  const std::string cache = "type=registry,ref=" + reg + "/cache/app:c,mode=max";
  const std::string from = "type=registry,ref=" + reg + "/cache/app:c";

  // Runner A: the base goes to the registry, then a build that exports the cache and pushes.
  test::BuildProject a;
  auto pushed = a.cbuild({"push", "-q", a.base, base});
  REQUIRE_MESSAGE(pushed.exit_code == 0, pushed.err);
  project(a, base);
  auto ra = a.build({"--cache-to", cache, "--push", "-t", reg + "/app/a:1"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  oci::Manifest final_image = a.manifest(reg + "/app/a:1");
  REQUIRE(final_image.layers.size() == 4);  // base, COPY a.txt, COPY b.txt, RUN
  std::set<std::string> all_layers = digests(final_image.layers);
  const int steps = done_steps(ra.err) - 1;  // all but FROM, which is never CACHED
  REQUIRE(steps >= 3);

  // Runner B: nothing in its store, not even the base.
  test::BuildProject b;
  fs::remove_all(b.root);
  project(b, base);
  proxy->clear_seen();
  auto rb = b.build({"--cache-from", from, "--push", "-t", reg + "/app/b:1"});
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == steps, rb.err);
  Moved mb = moved(*proxy);
  for (const auto& l : all_layers) CHECK_MESSAGE(!mb.fetched.count(l), "layer " << l << " was downloaded\n" << rb.err);
  // Only the image config may go up (the new repository has not seen it); no layer does.
  for (const auto& l : all_layers) CHECK_MESSAGE(!mb.uploaded.count(l), "layer " << l << " was uploaded\n" << rb.err);
  CHECK(mb.uploaded.size() <= 1);
  CHECK(mb.chunked == 0);
  REQUIRE(b.tag(reg + "/app/b:1"));
  CHECK(b.tag(reg + "/app/b:1")->digest == a.tag(reg + "/app/a:1")->digest);
  // The store holds the image lazily: its layers are not there yet.
  {
    auto store = oci::LayoutStore::open(b.root);
    for (const auto& l : final_image.layers) CHECK_MESSAGE(!store->stat(l.digest), l.digest.str());
  }

  SUBCASE("what reads the image later fetches its layers, verified") {
    proxy->clear_seen();
    TempDir out;
    auto ru = b.cbuild({"unpack", reg + "/app/b:1", (out.path() / "bundle").string(), "cat", "/x"});
    REQUIRE_MESSAGE(ru.exit_code == 0, ru.err);
    CHECK(read_file(out.path() / "bundle" / "rootfs" / "a.txt") == "a\n");
    CHECK(read_file(out.path() / "bundle" / "rootfs" / "b.txt") == "b\n");
    CHECK(read_file(out.path() / "bundle" / "rootfs" / "x") == "1\n");
    CHECK_MESSAGE(moved(*proxy).fetched == all_layers, joined(moved(*proxy).fetched));
    auto store = oci::LayoutStore::open(b.root);
    for (const auto& l : final_image.layers) CHECK(store->stat(l.digest) == l.size);
  }
  SUBCASE("into the local store, a fully cached build fetches exactly the final image's layers") {
    test::BuildProject c;
    fs::remove_all(c.root);
    project(c, base);
    proxy->clear_seen();
    auto rc = c.build({"--cache-from", from, "-t", "app:c"});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK_MESSAGE(cached_steps(rc.err) == steps, rc.err);
    Moved mc = moved(*proxy);
    oci::Manifest mcm = c.manifest("docker.io/library/app:c");
    CHECK(digests(mcm.layers) == all_layers);
    for (const auto& l : all_layers) CHECK_MESSAGE(mc.fetched.count(l), "layer " << l << " not fetched");
    // Beyond the image's layers only documents came: the base's config and the cache record.
    std::size_t other_bytes = 0;
    for (const auto& s : proxy->seen())
      if (s.method == "GET" && s.path.find("/blobs/sha256:") != std::string::npos &&
          !all_layers.count(s.path.substr(s.path.find("/blobs/sha256:") + 7, 71)))
        other_bytes += s.response_body;
    CHECK_MESSAGE(other_bytes < 64 * 1024, other_bytes);
    auto store = oci::LayoutStore::open(c.root);
    for (const auto& l : mcm.layers) CHECK(store->stat(l.digest) == l.size);
  }
  SUBCASE("a runner that also exports the cache again moves no layer bytes either") {
    test::BuildProject c;
    fs::remove_all(c.root);
    project(c, base);
    proxy->clear_seen();
    auto rc = c.build({"--cache-from", from, "--cache-to", cache, "--push", "-t", reg + "/app/c:1"});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK_MESSAGE(cached_steps(rc.err) == steps, rc.err);
    Moved mc = moved(*proxy);
    for (const auto& l : all_layers) {
      CHECK_MESSAGE(!mc.fetched.count(l), "layer " << l << " was downloaded\n" << rc.err);
      CHECK_MESSAGE(!mc.uploaded.count(l), "layer " << l << " was uploaded\n" << rc.err);
    }
    CHECK(mc.chunked == 0);
    // The cache it wrote still warms another empty store.
    test::BuildProject d;
    fs::remove_all(d.root);
    project(d, base);
    auto rd = d.build({"--cache-from", from, "-t", "app:d"});
    REQUIRE_MESSAGE(rd.exit_code == 0, rd.err);
    CHECK_MESSAGE(cached_steps(rd.err) == steps, rd.err);
  }
  SUBCASE("a RUN that misses after hits fetches the layers under it") {
    test::BuildProject c;
    fs::remove_all(c.root);
    project(c, base);
    proxy->clear_seen();
    auto rc = c.build({"--cache-from", from, "--build-arg", "X=2", "-t", "app:c"});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK_MESSAGE(cached_steps(rc.err) == steps - 1, rc.err);
    Moved mc = moved(*proxy);
    // The three layers under the RUN, and not the RUN layer of the cache (it missed).
    for (std::size_t i = 0; i < 3; ++i)
      CHECK_MESSAGE(mc.fetched.count(final_image.layers[i].digest.str()), i << ": " << joined(mc.fetched));
    CHECK(!mc.fetched.count(final_image.layers[3].digest.str()));
    TempDir t;
    fs::path tree = c.tree("docker.io/library/app:c", t.path() / "tree");
    CHECK(read_file(tree / "x") == "2\n");
    CHECK(read_file(tree / "a.txt") == "a\n");
  }
  SUBCASE("a lazy layer whose registry is gone: one error naming it and the registry, the store intact") {
    proxy.reset();  // the only address B knows the registry by no longer answers
    TempDir out;
    auto ru = b.cbuild({"run", reg + "/app/b:1", "cat", "/x"});
    CHECK(ru.exit_code != 0);
    CHECK_MESSAGE(ru.err.find("cbuild: error: ") != std::string::npos, ru.err);
    CHECK_MESSAGE(ru.err.find(final_image.layers[0].digest.str()) != std::string::npos, ru.err);
    CHECK_MESSAGE(ru.err.find(reg + "/") != std::string::npos, ru.err);
    CHECK_MESSAGE(test::count_lines_starting(ru.err, "cbuild: error: ") == 1, ru.err);
    CHECK(b.leftovers("").empty());
    // A build on the lazy image whose RUN needs its files: the same, on the RUN's line.
    b.file("Dockerfile", "FROM " + reg + "/app/b:1\nRUN cat /x\n");
    auto rd = b.build({"-t", "child:1"});
    CHECK(rd.exit_code != 0);
    CHECK_MESSAGE(rd.err.find(final_image.layers[0].digest.str()) != std::string::npos, rd.err);
    CHECK_MESSAGE(rd.err.find(reg + "/") != std::string::npos, rd.err);
    CHECK_MESSAGE(test::count_lines_starting(rd.err, "cbuild: error: ") == 1, rd.err);
    CHECK(!b.has_tag("docker.io/library/child:1"));
    CHECK(b.leftovers("").empty());
    // What only reads descriptors works without the layers.
    for (const std::vector<std::string>& cmd : {std::vector<std::string>{"images"}, {"df"}, {"inspect", reg + "/app/b:1"}}) {
      auto r = b.cbuild(cmd);
      CHECK_MESSAGE(r.exit_code == 0, cmd.front() << ": " << r.err);
    }
    auto rp = b.cbuild({"prune", "-a", "-f"});
    CHECK_MESSAGE(rp.exit_code == 0, rp.err);
    auto rf = b.cbuild({"images"});
    CHECK_MESSAGE(rf.exit_code == 0, rf.err);
  }
}

// The layers of the cache manifest in the OCI layout `dir` (docs/cache.md).
std::set<std::string> cache_layers(const fs::path& dir) {
  auto index = nlohmann::json::parse(read_file(dir / "index.json"));
  auto d = oci::Digest::parse(index["manifests"].back()["digest"].get<std::string>());
  return digests(oci::Manifest::parse(read_file(dir / "blobs" / "sha256" / d.hex())).layers);
}

TEST_CASE("multi-stage: a cached COPY --from reads none of the builder stage's layers") {
  REQUIRE_ROOT();
  test::RegistryServer registry;
  test::FaultProxy proxy(registry.port());
  const std::string reg = proxy.host();
  const std::string base = reg + "/lib/base:1";
  const std::string from = "type=registry,ref=" + reg + "/cache/ms:c";
  auto multi_stage = [&](const test::BuildProject& p) {
    p.file("a.txt", "a\n");
    p.file("b.txt", "b\n");
    p.file("Dockerfile", "FROM " + base + " AS builder\nCOPY a.txt /a.txt\nRUN cat /a.txt > /out\n"
                         "FROM " + base + "\nCOPY --from=builder /out /out\nCOPY b.txt /b.txt\n");
  };

  test::BuildProject a;
  auto pushed = a.cbuild({"push", "-q", a.base, base});
  REQUIRE_MESSAGE(pushed.exit_code == 0, pushed.err);
  multi_stage(a);
  TempDir dir;  // the same cache in a directory, where the test reads its manifest
  auto ra = a.build({"--cache-to", from + ",mode=max", "--cache-to", "type=local,mode=max,dest=" + (dir.path() / "c").string(),
                     "--push", "-t", reg + "/app/ms:1"});
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  const int steps = done_steps(ra.err) - 2;  // both FROMs are never CACHED
  std::set<std::string> final_layers = digests(a.manifest(reg + "/app/ms:1").layers);
  REQUIRE(final_layers.size() == 3);  // base, COPY --from, COPY b.txt
  std::set<std::string> builder_layers;
  for (const auto& l : cache_layers(dir.path() / "c"))
    if (!final_layers.count(l)) builder_layers.insert(l);
  REQUIRE(builder_layers.size() == 2);  // COPY a.txt, RUN

  SUBCASE("with --push from an empty store: no layer moves") {
    test::BuildProject b;
    fs::remove_all(b.root);
    multi_stage(b);
    proxy.clear_seen();
    auto rb = b.build({"--cache-from", from, "--push", "-t", reg + "/app/ms-b:1"});
    REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
    CHECK_MESSAGE(cached_steps(rb.err) == steps, rb.err);
    Moved mb = moved(proxy);
    for (const auto& l : final_layers) CHECK_MESSAGE((!mb.fetched.count(l) && !mb.uploaded.count(l)), l << "\n" << rb.err);
    for (const auto& l : builder_layers) CHECK_MESSAGE((!mb.fetched.count(l) && !mb.uploaded.count(l)), l << "\n" << rb.err);
    CHECK(b.tag(reg + "/app/ms-b:1")->digest == a.tag(reg + "/app/ms:1")->digest);
  }
  SUBCASE("into the local store: exactly the final image's layers are fetched") {
    test::BuildProject c;
    fs::remove_all(c.root);
    multi_stage(c);
    proxy.clear_seen();
    auto rc = c.build({"--cache-from", from, "-t", "ms:c"});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    CHECK_MESSAGE(cached_steps(rc.err) == steps, rc.err);
    Moved mc = moved(proxy);
    for (const auto& l : final_layers) CHECK_MESSAGE(mc.fetched.count(l), "layer " << l << " not fetched");
    for (const auto& l : builder_layers) CHECK_MESSAGE(!mc.fetched.count(l), "builder layer " << l << " fetched");
    TempDir t;
    fs::path tree = c.tree("docker.io/library/ms:c", t.path() / "tree");
    CHECK(read_file(tree / "out") == "a\n");
  }
  SUBCASE("the builder's output changed: the COPY --from runs again") {
    test::BuildProject c;
    fs::remove_all(c.root);
    multi_stage(c);
    c.file("a.txt", "changed\n");
    auto rc = c.build({"--cache-from", from, "-t", "ms:c"});
    REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
    TempDir t;
    fs::path tree = c.tree("docker.io/library/ms:c", t.path() / "tree");
    CHECK(read_file(tree / "out") == "changed\n");
  }
}

TEST_CASE("token auth: runner B moves no layer bytes, and fetches lazy layers later with its credentials") {
  REQUIRE_ROOT();
  test::RegistryServer registry(test::RegistryServer::Mode::Token);
  test::FaultProxy proxy(registry.port());
  const std::string reg = proxy.host();
  TempDir auth;
  nlohmann::json config{{"auths", {{reg, {{"auth", cbuild::registry::base64_encode(registry.user() + ":" + registry.password())}}}}}};
  write_file_atomic(auth.path() / "config.json", config.dump());
  std::vector<std::string> env{"DOCKER_CONFIG=" + auth.path().string(),
                               "REGISTRY_AUTH_FILE=" + (auth.path() / "config.json").string()};
  const std::string base = reg + "/lib/base:1";
  const std::string cache_ref = reg + "/cache/app:c";

  test::BuildProject a;
  auto pushed = a.cbuild({"push", "-q", a.base, base}, {}, env);
  REQUIRE_MESSAGE(pushed.exit_code == 0, pushed.err);
  project(a, base);
  auto ra = a.build({"--cache-to", "type=registry,ref=" + cache_ref, "--push", "-t", reg + "/app/a:1"}, env);
  REQUIRE_MESSAGE(ra.exit_code == 0, ra.err);
  std::set<std::string> all_layers = digests(a.manifest(reg + "/app/a:1").layers);
  REQUIRE(all_layers.size() == 4);

  test::BuildProject b;
  fs::remove_all(b.root);
  project(b, base);
  proxy.clear_seen();
  auto rb = b.build({"--cache-from", "type=registry,ref=" + cache_ref, "--push", "-t", reg + "/app/b:1"}, env);
  REQUIRE_MESSAGE(rb.exit_code == 0, rb.err);
  CHECK_MESSAGE(cached_steps(rb.err) == done_steps(ra.err) - 1, rb.err);
  Moved mb = moved(proxy);
  for (const auto& l : all_layers) {
    CHECK_MESSAGE(!mb.fetched.count(l), "layer " << l << " was downloaded\n" << rb.err);
    CHECK_MESSAGE(!mb.uploaded.count(l), "layer " << l << " was uploaded\n" << rb.err);
  }
  CHECK(mb.chunked == 0);
  CHECK(b.tag(reg + "/app/b:1")->digest == a.tag(reg + "/app/a:1")->digest);

  proxy.clear_seen();
  TempDir out;
  auto ru = b.cbuild({"unpack", reg + "/app/b:1", (out.path() / "bundle").string(), "cat", "/x"}, {}, env);
  REQUIRE_MESSAGE(ru.exit_code == 0, ru.err);
  CHECK(read_file(out.path() / "bundle" / "rootfs" / "x") == "1\n");
  CHECK_MESSAGE(moved(proxy).fetched == all_layers, joined(moved(proxy).fetched));
}

}  // namespace
}  // namespace cbuild
