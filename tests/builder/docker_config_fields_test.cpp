// The config fields only Docker's image format has (Healthcheck, OnBuild, Shell): an
// `-o type=docker` archive carries them as `docker build` makes them, and an OCI image, which
// cannot, says so on stderr once per build instead of dropping them without a word.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

// Config only (no RUN): the three docker-only instructions and a CMD that SHELL shapes.
std::string fields_dockerfile(const std::string& base) {
  return "FROM " + base + "\n" +
         "HEALTHCHECK --interval=30s --timeout=5s --start-period=2s --retries=4 CMD [\"/bin/true\"]\n"
         "SHELL [\"/bin/sh\", \"-ec\"]\n"
         "ONBUILD RUN echo from-the-parent\n"
         "CMD echo hi\n";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const char* const kWarnings[] = {
    "WARNING: HEALTHCHECK is not supported for OCI image format and will be ignored; use --format docker to keep it\n",
    "WARNING: ONBUILD is not supported for OCI image format and will be ignored; use --format docker to keep it\n",
    "WARNING: SHELL is not supported for OCI image format and will be ignored; use --format docker to keep it\n",
};

}  // namespace

TEST_CASE("-o type=docker writes a Docker config: docker load keeps Healthcheck, Shell and OnBuild as docker build sets them") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", fields_dockerfile(p.base));
  fs::path archive = p.dir.path() / "fields.tar";
  auto r = p.build({"-t", "cbuild-fields-test:1", "-o", "type=docker,dest=" + archive.string()});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.find("not supported for OCI image format") == std::string::npos);
  std::string id = r.out.substr(0, r.out.find('\n'));

  auto l = docker->docker({"load", "-i", archive.string()});
  REQUIRE_MESSAGE(l.exit_code == 0, l.err);
  auto i = docker->docker({"image", "inspect", "--format", "{{.Id}} {{json .Config}}", "cbuild-fields-test:1"});
  docker->docker({"rmi", "cbuild-fields-test:1"});
  REQUIRE_MESSAGE(i.exit_code == 0, i.err);
  CHECK(i.out.substr(0, i.out.find(' ')) == id);
  json mine = json::parse(i.out.substr(i.out.find(' ') + 1));

  TempDir work;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  const json& theirs = b.config["config"];
  for (const char* key : {"Healthcheck", "Shell", "OnBuild", "Cmd"}) {
    CAPTURE(key);
    REQUIRE(theirs.contains(key));
    CHECK(theirs[key] == mine.value(key, json()));
  }
  CHECK(theirs["OnBuild"] == json::array({"RUN echo from-the-parent"}));
}

TEST_CASE("-o type=docker with --format oci is refused as a contradiction; with --format docker it is fine") {
  TempDir dir;
  fs::path ctx = dir.path() / "ctx";
  fs::create_directories(ctx);
  write_file_atomic(ctx / "Dockerfile", "FROM scratch\n");
  auto r = test::run_cbuild({"--root", (dir.path() / "store").string(), "build", "--format", "oci", "-o",
                             "type=docker,dest=" + (dir.path() / "x.tar").string(), ctx.string()});
  CHECK(r.exit_code == 2);
  CHECK(r.err ==
        "cbuild: error: --format oci contradicts --output type=docker: a docker archive holds a Docker image "
        "(drop --format, or use --output type=oci for an OCI archive)\n");
  CHECK(!fs::exists(dir.path() / "x.tar"));
  CHECK(!fs::exists(dir.path() / "store"));

  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", fields_dockerfile(p.base));
  fs::path archive = p.dir.path() / "ok.tar";
  auto ok = p.build({"--format", "docker", "-o", "type=docker,dest=" + archive.string()});
  REQUIRE_MESSAGE(ok.exit_code == 0, ok.err);
  CHECK(fs::exists(archive));
}

TEST_CASE("an OCI image that loses HEALTHCHECK, ONBUILD or SHELL says so once per build, naming --format docker") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());

  SUBCASE("all three, set in two stages: one line each, once") {
    p.file("Dockerfile", "FROM " + p.base + " AS parent\nSHELL [\"/bin/sh\", \"-ec\"]\nHEALTHCHECK CMD [\"/bin/true\"]\n" +
                             "FROM parent\nSHELL [\"/bin/sh\", \"-c\"]\nONBUILD RUN true\nLABEL a=b\n");
    auto r = p.build({"-t", "warn:1"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    for (const char* w : kWarnings) CHECK_MESSAGE(count(r.err, w) == 1, r.err);
    auto [config, tree] = p.image("docker.io/library/warn:1", p.dir.path() / "warn/rootfs");
    CHECK(!config["config"].contains("Healthcheck"));
    CHECK(!config["config"].contains("Shell"));
    CHECK(!config["config"].contains("OnBuild"));
  }
  SUBCASE("HEALTHCHECK NONE is lost too; only the field that is lost is named") {
    p.file("Dockerfile", "FROM " + p.base + "\nHEALTHCHECK NONE\n");
    auto r = p.build({"-t", "warn:2"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK_MESSAGE(count(r.err, kWarnings[0]) == 1, r.err);
    CHECK(count(r.err, "not supported for OCI image format") == 1);
  }
  SUBCASE("--format docker keeps them, without a warning") {
    p.file("Dockerfile", fields_dockerfile(p.base));
    auto r = p.build({"-t", "warn:3", "--format", "docker"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK_MESSAGE(r.err.find("not supported for OCI image format") == std::string::npos, r.err);
    auto [config, tree] = p.image("docker.io/library/warn:3", p.dir.path() / "warn3/rootfs");
    CHECK(config["config"]["Shell"] == json::array({"/bin/sh", "-ec"}));
    CHECK(config["config"]["OnBuild"] == json::array({"RUN echo from-the-parent"}));
    CHECK(config["config"]["Healthcheck"]["Retries"] == 4);
  }
  SUBCASE("no warning without those instructions, nor for a stage the image does not come from") {
    p.file("Dockerfile", "FROM " + p.base + " AS helper\nSHELL [\"/bin/sh\", \"-ec\"]\nHEALTHCHECK CMD [\"/bin/true\"]\n" +
                             "FROM " + p.base + "\nCOPY --from=helper /bin/busybox /t\nCMD [\"/t\"]\n");
    auto r = p.build({"-t", "warn:4"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    CHECK_MESSAGE(r.err.find("not supported for OCI image format") == std::string::npos, r.err);
  }
}
