// --platform and FROM --platform: cbuild makes single-platform images on this machine's
// kernel, so what it cannot honour (a list of platforms, a malformed one, a base image of
// another platform, a RUN of foreign programs without an emulator) stops the build with a
// message naming it, and what it can (FROM scratch + COPY for another platform, a base of the
// requested platform without RUN) is made as docker makes it.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "builder/steps/run_platform.h"
#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

// A platform this machine cannot run natively.
std::string foreign_arch() { return oci::Platform::host().architecture == "arm64" ? "amd64" : "arm64"; }
std::string host_str() { return oci::Platform::host().str(); }

// The base image again, its config claiming `arch` (the files stay the host's: enough for
// builds without RUN, and for checking that a RUN is refused). Tagged `name`; returns the
// manifest descriptor.
oci::Descriptor retag_as(const test::BuildProject& p, const std::string& arch, const std::string& name) {
  auto store = oci::LayoutStore::open(p.root);
  auto base = store->resolve("docker.io/library/" + p.base);
  REQUIRE(base);
  oci::Manifest m = oci::Manifest::parse(store->read_blob(base->digest));
  json config = json::parse(store->read_blob(m.config.digest));
  config["architecture"] = arch;
  std::string config_bytes = config.dump();
  m.config.digest = store->put_blob(config_bytes);
  m.config.size = static_cast<std::int64_t>(config_bytes.size());
  std::string bytes = m.to_json();
  oci::Descriptor d{.media_type = m.media_type, .digest = store->put_blob(bytes), .size = static_cast<std::int64_t>(bytes.size())};
  store->set_tag(name, d);
  return d;
}

// An index holding only `manifest` for linux/`arch`, tagged `name`.
void put_index(const test::BuildProject& p, const oci::Descriptor& manifest, const std::string& arch, const std::string& name) {
  auto store = oci::LayoutStore::open(p.root);
  oci::Index idx;
  idx.media_type = std::string(oci::media_types::kOciIndex);
  oci::Descriptor d = manifest;
  d.platform = oci::Platform{.architecture = arch, .os = "linux"};
  idx.manifests.push_back(d);
  std::string bytes = idx.to_json();
  store->set_tag(name, oci::Descriptor{.media_type = idx.media_type,
                                       .digest = store->put_blob(bytes),
                                       .size = static_cast<std::int64_t>(bytes.size())});
}

std::string last_error_line(const std::string& err) {
  auto at = err.rfind("cbuild: error: ");
  return at == std::string::npos ? std::string() : err.substr(at);
}

}  // namespace

TEST_CASE("--platform: a list or a malformed platform is a usage error before any work") {
  TempDir dir;
  fs::path ctx = dir.path() / "ctx";
  fs::create_directories(ctx);
  write_file_atomic(ctx / "Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
  auto build = [&](const std::string& platform) {
    return test::run_cbuild({"--root", (dir.path() / "store").string(), "build", "--platform", platform, ctx.string()});
  };
  auto list = build("linux/amd64,linux/arm64");
  CHECK(list.exit_code == 2);
  CHECK(list.err ==
        "cbuild: error: --platform \"linux/amd64,linux/arm64\": multi-platform builds are not supported (give one platform)\n");
  for (std::string bad : {"linux/", "linux//arm64", "linux/arm 64", "linux/arm64/v8/x", "linux/amd64;rm"}) {
    CAPTURE(bad);
    auto r = build(bad);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("cbuild: error: --platform: invalid platform ") == 0);
    CHECK(r.err.find(bad) != std::string::npos);
    CHECK(r.out.empty());
  }
  CHECK(!fs::exists(dir.path() / "store"));
}

TEST_CASE("FROM --platform with a list or a malformed platform names the Dockerfile line") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM scratch\nCOPY Dockerfile /\nFROM --platform=linux/amd64,linux/arm64 scratch\nCOPY Dockerfile /\n");
  auto r = p.build({"-t", "plat:list"});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find("Dockerfile:3") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("multi-platform builds are not supported") != std::string::npos, r.err);
  p.file("Dockerfile", "FROM --platform=linux/arm,64 scratch\nCOPY Dockerfile /\n");
  auto b = p.build({"-t", "plat:bad"});
  CHECK(b.exit_code != 0);
  CHECK_MESSAGE(b.err.find("Dockerfile:1") != std::string::npos, b.err);
}

TEST_CASE("FROM scratch + COPY for another platform: the config says that platform, as docker's does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM scratch\nCOPY Dockerfile /df\nARG TARGETPLATFORM\nLABEL target=$TARGETPLATFORM\n");
  std::vector<std::pair<std::string, std::string>> cases = {{"linux/arm64", "arm64"}, {"linux/arm/v7", "arm"}, {"arm64", "arm64"}};
  test::DockerPeer* docker = test::DockerPeer::get();
  int n = 0;
  for (const auto& [platform, arch] : cases) {
    CAPTURE(platform);
    std::string tag = "plat:scratch" + std::to_string(n++);
    auto r = p.build({"-t", tag, "--platform", platform});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    auto [config, tree] = p.image("docker.io/library/" + tag, p.dir.path() / (tag.substr(5) + "/rootfs"));
    CHECK(config["architecture"] == arch);
    CHECK(config["os"] == "linux");
    CHECK(config.value("variant", "") == (arch == "arm" ? "v7" : ""));
    CHECK(fs::exists(tree / "df"));
    if (!docker) continue;
    TempDir work;
    auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path(), {"--platform", platform});
    REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
    CHECK(b.config["architecture"] == config["architecture"]);
    CHECK(b.config.value("variant", "") == config.value("variant", ""));
    CHECK(b.config["config"]["Labels"] == config["config"]["Labels"]);
  }
}

TEST_CASE("a base image of another platform than the one asked for is refused, naming the base and both platforms") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  std::string foreign = "linux/" + foreign_arch();

  SUBCASE("--platform") {
    p.file("Dockerfile", "FROM " + p.base + "\nCOPY Dockerfile /df\n");
    auto r = p.build({"-t", "plat:wrong", "--platform", foreign});
    CHECK(r.exit_code == 1);
    std::string line = last_error_line(r.err);
    CHECK_MESSAGE(line.find("Dockerfile:1: FROM " + p.base + ": image " + p.base + " is for " + host_str() +
                            ", not the requested " + foreign) != std::string::npos,
                  line);
    CHECK(!oci::LayoutStore::open(p.root)->resolve("docker.io/library/plat:wrong"));
  }
  SUBCASE("FROM --platform, in a stage COPY --from takes from") {
    p.file("Dockerfile", "FROM --platform=" + foreign + " " + p.base + " AS b\nFROM scratch\nCOPY --from=b /bin/busybox /\n");
    auto r = p.build({"-t", "plat:wrong2"});
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(last_error_line(r.err).find("Dockerfile:1: FROM --platform=" + foreign + " " + p.base + " AS b: image " +
                                              p.base + " is for " + host_str() + ", not the requested " + foreign) !=
                      std::string::npos,
                  r.err);
  }
  SUBCASE("an index without the platform lists what it has") {
    oci::Descriptor m = retag_as(p, foreign_arch(), "docker.io/library/plat-other:1");
    put_index(p, m, foreign_arch(), "docker.io/library/plat-index:1");
    p.file("Dockerfile", "FROM plat-index:1\nCOPY Dockerfile /df\n");
    auto r = p.build({"-t", "plat:index", "--platform", host_str()});
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(last_error_line(r.err).find("image plat-index:1: no manifest for platform " + host_str() +
                                              " (the index has: " + foreign + ")") != std::string::npos,
                  r.err);
    // The platform it has is picked from it.
    auto ok = p.build({"-t", "plat:index-ok", "--platform", foreign});
    REQUIRE_MESSAGE(ok.exit_code == 0, ok.err);
    auto [config, tree] = p.image("docker.io/library/plat:index-ok", p.dir.path() / "io/rootfs");
    CHECK(config["architecture"] == foreign_arch());
  }
}

TEST_CASE("a RUN in an image of a platform this machine cannot run is refused unless an emulator is registered") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  retag_as(p, foreign_arch(), "docker.io/library/plat-foreign:1");
  oci::Platform image{.architecture = foreign_arch(), .os = "linux"};
  bool emulated = !builder::foreign_run_problem(image, oci::Platform::host()).has_value();

  // Without RUN, the foreign base is used as it is: its platform is the image's.
  p.file("Dockerfile", "FROM plat-foreign:1\nCOPY Dockerfile /df\n");
  auto copy = p.build({"-t", "plat:copy", "--platform", "linux/" + foreign_arch()});
  REQUIRE_MESSAGE(copy.exit_code == 0, copy.err);
  auto [config, tree] = p.image("docker.io/library/plat:copy", p.dir.path() / "copy/rootfs");
  CHECK(config["architecture"] == foreign_arch());

  for (std::vector<std::string> flags : {std::vector<std::string>{"--platform", "linux/" + foreign_arch()}, std::vector<std::string>{}}) {
    CAPTURE(flags.size());
    p.file("Dockerfile", "FROM plat-foreign:1\nRUN echo ran > /ran\n");
    flags.insert(flags.begin(), {"-t", "plat:run"});
    auto r = p.build(flags);
    if (emulated) {
      MESSAGE("an emulator for " << foreign_arch() << " is registered here: RUN runs through it");
      CHECK_MESSAGE(r.exit_code == 0, r.err);
      continue;
    }
    CHECK(r.exit_code == 1);
    std::string line = last_error_line(r.err);
    CHECK_MESSAGE(line.find("Dockerfile:2: RUN echo ran > /ran: the image is for linux/" + foreign_arch() +
                            " and this machine is " + host_str() + ": RUN needs an emulator for " + foreign_arch()) !=
                      std::string::npos,
                  line);
    CHECK(!oci::LayoutStore::open(p.root)->resolve("docker.io/library/plat:run"));
  }

  // FROM --platform=$BUILDPLATFORM (the cross-compiling pattern) runs natively.
  p.file("Dockerfile", "FROM --platform=$BUILDPLATFORM " + p.base + " AS build\nRUN echo built > /out\n"
                       "FROM plat-foreign:1\nCOPY --from=build /out /out\n");
  auto cross = p.build({"-t", "plat:cross", "--platform", "linux/" + foreign_arch()});
  REQUIRE_MESSAGE(cross.exit_code == 0, cross.err);
  auto [cconfig, ctree] = p.image("docker.io/library/plat:cross", p.dir.path() / "cross/rootfs");
  CHECK(cconfig["architecture"] == foreign_arch());
  CHECK(read_file(ctree / "out") == "built\n");
}

TEST_CASE("foreign_run_problem: native platforms run; others need an enabled binfmt_misc handler with the F flag") {
  TempDir dir;
  fs::path b = dir.path();
  oci::Platform amd64{.architecture = "amd64", .os = "linux"};
  oci::Platform arm64{.architecture = "arm64", .os = "linux"};
  CHECK(!builder::foreign_run_problem(amd64, amd64, b));
  CHECK(!builder::foreign_run_problem(oci::Platform{.architecture = "386", .os = "linux"}, amd64, b));

  // Nothing registered (binfmt_misc not even mounted).
  auto none = builder::foreign_run_problem(arm64, amd64, b);
  REQUIRE(none);
  CHECK(*none == "the image is for linux/arm64 and this machine is linux/amd64: RUN needs an emulator for arm64 and "
                 "none is registered (install qemu-user-static, whose binfmt_misc handlers run foreign programs)");

  // qemu-user-static's aarch64 handler, as the kernel shows it.
  write_file_atomic(b / "status", "enabled\n");
  write_file_atomic(b / "register", "");
  std::string handler =
      "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n"
      "magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
  write_file_atomic(b / "qemu-aarch64", handler);
  CHECK(!builder::foreign_run_problem(arm64, amd64, b));
  // It does not run s390x (big-endian, another machine) nor riscv64 programs.
  CHECK(builder::foreign_run_problem(oci::Platform{.architecture = "s390x", .os = "linux"}, amd64, b));
  CHECK(builder::foreign_run_problem(oci::Platform{.architecture = "riscv64", .os = "linux"}, amd64, b));

  write_file_atomic(b / "status", "disabled\n");
  CHECK(builder::foreign_run_problem(arm64, amd64, b));
  write_file_atomic(b / "status", "enabled\n");

  write_file_atomic(b / "qemu-aarch64", "disabled" + handler.substr(handler.find('\n')));
  CHECK(builder::foreign_run_problem(arm64, amd64, b));

  std::string no_f = handler;
  no_f.replace(no_f.find("POCF"), 4, "POC");
  write_file_atomic(b / "qemu-aarch64", no_f);
  auto lacks = builder::foreign_run_problem(arm64, amd64, b);
  REQUIRE(lacks);
  CHECK(lacks->find("its binfmt_misc handler qemu-aarch64 lacks the F flag") != std::string::npos);

  // Another operating system's programs never run here.
  auto win = builder::foreign_run_problem(oci::Platform{.architecture = "amd64", .os = "windows"}, amd64, b);
  REQUIRE(win);
  CHECK(win->find("RUN can only run linux programs here") != std::string::npos);
}
