// One image index, one rule: `cbuild inspect`, `unpack`, `run` and FROM pick the same manifest
// of a multi-platform image for each platform (variant-aware, the host's when none is given),
// and a platform the index lacks is the same error everywhere, never its first manifest.
#include <unistd.h>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "tests/support/build_project.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

// The base image again for `platform`, its config claiming it and carrying PICK=<platform>
// (the files stay the host's: enough for everything but a RUN). Returns the manifest
// descriptor with the platform set, as an index lists it.
oci::Descriptor variant_of(oci::LayoutStore& store, const std::string& base, const oci::Platform& platform) {
  auto top = store.resolve("docker.io/library/" + base);
  REQUIRE(top);
  oci::Manifest m = oci::Manifest::parse(store.read_blob(top->digest));
  json config = json::parse(store.read_blob(m.config.digest));
  config["architecture"] = platform.architecture;
  config["os"] = platform.os;
  if (platform.variant.empty()) config.erase("variant");
  else config["variant"] = platform.variant;
  config["config"]["Env"] = json::array({"PATH=/bin", "PICK=" + platform.str()});
  std::string config_bytes = config.dump();
  m.config.digest = store.put_blob(config_bytes);
  m.config.size = static_cast<std::int64_t>(config_bytes.size());
  std::string bytes = m.to_json();
  return oci::Descriptor{.media_type = m.media_type,
                         .digest = store.put_blob(bytes),
                         .size = static_cast<std::int64_t>(bytes.size()),
                         .platform = platform};
}

// Tags `name` with an index of one manifest per platform, in this order.
void put_index(const test::BuildProject& p, const std::string& name, const std::vector<oci::Platform>& platforms) {
  auto store = oci::LayoutStore::open(p.root);
  oci::Index idx;
  idx.media_type = std::string(oci::media_types::kOciIndex);
  for (const auto& pl : platforms) idx.manifests.push_back(variant_of(*store, p.base, pl));
  std::string bytes = idx.to_json();
  store->set_tag(name, oci::Descriptor{.media_type = idx.media_type,
                                       .digest = store->put_blob(bytes),
                                       .size = static_cast<std::int64_t>(bytes.size())});
}

// As written (Platform::parse would normalize arm64/v8 to arm64): registries list "v8".
oci::Platform plat(const std::string& os, const std::string& arch, const std::string& variant = "") {
  return oci::Platform{.architecture = arch, .os = os, .variant = variant};
}

std::string pick_of(const json& env) {
  for (const auto& e : env)
    if (e.is_string() && e.get<std::string>().starts_with("PICK=")) return e.get<std::string>().substr(5);
  return "<none>";
}

std::vector<std::string> with_platform(const std::string& platform, std::vector<std::string> rest) {
  if (!platform.empty()) rest.insert(rest.begin(), {"--platform", platform});
  return rest;
}

// The PICK of the manifest each resolver chooses, or its error line.
struct Picks {
  std::string inspect, unpack, from;
};

std::string last_error_line(const test::CommandResult& r) {
  auto at = r.err.rfind("cbuild: error: ");
  return at == std::string::npos ? "exit " + std::to_string(r.exit_code) + ": " + r.err : r.err.substr(at);
}

Picks picks(test::BuildProject& p, const std::string& image, const std::string& platform, int n) {
  Picks out;
  auto in = test::run_cbuild([&] {
    std::vector<std::string> a{"--root", p.root.string(), "inspect"};
    for (auto& s : with_platform(platform, {"--format", "{{json .Config.Env}}", image})) a.push_back(s);
    return a;
  }());
  out.inspect = in.exit_code == 0 ? pick_of(json::parse(in.out)) : last_error_line(in);

  fs::path bundle = p.dir.path() / ("bundle" + std::to_string(n));
  auto un = test::run_cbuild([&] {
    std::vector<std::string> a{"--root", p.root.string(), "unpack"};
    for (auto& s : with_platform(platform, {image, bundle.string(), "/bin/true"})) a.push_back(s);
    return a;
  }());
  out.unpack = un.exit_code == 0 ? pick_of(json::parse(read_file(bundle / "config.json"))["process"]["env"])
                                 : last_error_line(un);

  p.file("Dockerfile", "FROM " + image + "\nCOPY Dockerfile /df\n");
  std::string tag = "picked:" + std::to_string(n);
  auto b = p.build(with_platform(platform, {"-t", tag}));
  if (b.exit_code == 0) {
    auto [config, tree] = p.image("docker.io/library/" + tag, p.dir.path() / ("tree" + std::to_string(n)) / "rootfs");
    out.from = pick_of(config["config"]["Env"]);
  } else {
    out.from = last_error_line(b);
  }
  return out;
}

}  // namespace

TEST_CASE("inspect, unpack and FROM pick the same manifest of an index for each platform") {
  test::BuildProject p("cbuild-test-busybox:1");
  const std::string host = oci::Platform::host().str();
  REQUIRE_MESSAGE(host == "linux/amd64", "the expectations below are written for an amd64 host");
  // The host's manifest last: a "first manifest" rule would show.
  put_index(p, "docker.io/library/multi:1", {plat("linux", "arm", "v7"), plat("linux", "arm64", "v8"), plat("linux", "amd64")});

  struct Case {
    std::string platform, expect;
  };
  const std::string missing = " (the index has: linux/arm/v7, linux/arm64/v8, linux/amd64)";
  std::vector<Case> cases = {
      {"", "linux/amd64"},
      {"linux/amd64", "linux/amd64"},
      {"linux/arm64", "linux/arm64/v8"},
      {"linux/arm64/v8", "linux/arm64/v8"},
      {"linux/arm/v7", "linux/arm/v7"},
      {"linux/arm/v6", "image multi:1: no manifest for platform linux/arm/v6" + missing},
      {"linux/s390x", "image multi:1: no manifest for platform linux/s390x" + missing},
  };
  int n = 0;
  for (const auto& c : cases) {
    CAPTURE(c.platform);
    Picks got = picks(p, "multi:1", c.platform, n++);
    if (c.expect.starts_with("image ")) {
      CHECK_MESSAGE(got.inspect.find(c.expect) != std::string::npos, got.inspect);
      CHECK_MESSAGE(got.unpack.find(c.expect) != std::string::npos, got.unpack);
      CHECK_MESSAGE(got.from.find(c.expect) != std::string::npos, got.from);
    } else {
      CHECK(got.inspect == c.expect);
      CHECK(got.unpack == c.expect);
      CHECK(got.from == c.expect);
    }
  }
}

TEST_CASE("an index without the host's platform is an error when none is given, never its first manifest") {
  test::BuildProject p("cbuild-test-busybox:1");
  REQUIRE(oci::Platform::host().str() == "linux/amd64");
  put_index(p, "docker.io/library/armonly:1", {plat("linux", "arm", "v7"), plat("linux", "arm64", "v8")});
  const std::string error = "image armonly:1: no manifest for platform linux/amd64 (the index has: linux/arm/v7, linux/arm64/v8)";
  Picks got = picks(p, "armonly:1", "", 0);
  CHECK_MESSAGE(got.inspect.find(error) != std::string::npos, got.inspect);
  CHECK_MESSAGE(got.unpack.find(error) != std::string::npos, got.unpack);
  CHECK_MESSAGE(got.from.find(error) != std::string::npos, got.from);
  if (::geteuid() == 0) {
    auto r = test::run_cbuild({"--root", p.root.string(), "run", "armonly:1", "true"});
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(last_error_line(r).find(error) != std::string::npos, r.err);
  }
}

TEST_CASE("run uses the manifest inspect shows for the host") {
  REQUIRE_ROOT();
  test::BuildProject p("cbuild-test-busybox:1");
  REQUIRE(oci::Platform::host().str() == "linux/amd64");
  put_index(p, "docker.io/library/multi:1", {plat("linux", "arm", "v7"), plat("linux", "arm64", "v8"), plat("linux", "amd64")});
  auto r = test::run_cbuild({"--root", p.root.string(), "run", "multi:1", "/bin/sh", "-c", "echo $PICK"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out == "linux/amd64\n");
  CHECK(picks(p, "multi:1", "", 0).inspect == "linux/amd64");
}
