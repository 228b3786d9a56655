// ONBUILD, and ARG after an ENV of the same name, through the real binary and compared with
// docker build. Triggers of a base image (made by docker and loaded, or made by cbuild in the
// docker format) and of a base stage run right after FROM, in the child's scope and context;
// docker writes no history entry for ONBUILD itself and "OnBuild": null in an image without
// triggers. Of an ENV and an ARG of one name the later wins in RUN and in expansion, while the
// image's Env keeps the ENV value.
#include <doctest/doctest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::string file_in(const fs::path& rootfs, const std::string& rel) {
  return read_file_if_exists(rootfs / rel).value_or("<missing " + rel + ">");
}

json config_field(const json& config, const char* key) {
  const json& c = config.at("config");
  return c.contains(key) ? c.at(key) : json("<absent>");
}

// The history an image adds to its base: the entries after the first `skip` ones.
std::vector<std::string> history_after(const json& config, std::size_t skip) {
  auto all = test::history_created_by(config);
  return std::vector<std::string>(all.begin() + static_cast<long>(std::min(skip, all.size())), all.end());
}

// A base with triggers of every kind: ARG (so --build-arg reaches it), ENV expanding the base's
// ENV and the ARG, COPY (of the child's context), RUN (twice, the second continued on a
// second line with odd spacing, which the recorded trigger keeps).
std::string base_dockerfile(const std::string& from) {
  return "FROM " + from + "\n"
         "ENV E=base\n"
         "ONBUILD ARG V=dflt\n"
         "ONBUILD ENV E2=$E-$V\n"
         "ONBUILD COPY g /g\n"
         "ONBUILD RUN echo \"$V $E $E2\" > /t\n"
         "ONBUILD   RUN  echo two   spaces  \\\n"
         "  continued >> /t\n"
         "ENV E=base2\n";
}

const std::vector<std::string> kTriggers = {"ARG V=dflt", "ENV E2=$E-$V", "COPY g /g", "RUN echo \"$V $E $E2\" > /t",
                                            "RUN  echo two   spaces    continued >> /t"};

struct Child {
  json config;
  fs::path rootfs;
};

// Builds the project's Dockerfile with cbuild (docker format) and with docker, checks both
// succeed and that the images agree on files, Env, OnBuild, layers and history.
void check_child_like_docker(test::DockerPeer& docker, const test::BuildProject& p, const std::string& tag,
                             const fs::path& work, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args{"-t", tag, "--format", "docker"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = p.build(args);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [mine, mine_root] = p.image("docker.io/library/" + tag, work / "mine/rootfs");
  auto theirs = docker.build(p.ctx, p.ctx / "Dockerfile", work / "docker", extra);
  REQUIRE_MESSAGE(theirs.result.exit_code == 0, theirs.result.err);
  for (const char* f : {"t", "g", "out"}) {
    CAPTURE(f);
    CHECK(file_in(mine_root, f) == file_in(theirs.rootfs, f));
  }
  CHECK(config_field(mine, "Env") == config_field(theirs.config, "Env"));
  CHECK(config_field(mine, "OnBuild") == config_field(theirs.config, "OnBuild"));
  CHECK(mine["rootfs"]["diff_ids"].size() == theirs.config["rootfs"]["diff_ids"].size());
  CHECK(history_after(mine, 1) == history_after(theirs.config, 1));
}

}  // namespace

TEST_CASE("ONBUILD triggers of a base image run in the child as with docker (base made by docker, and by cbuild)") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  test::BuildProject p(docker->base());
  TempDir base_ctx;
  write(base_ctx.path() / "Dockerfile", base_dockerfile(p.base));
  write(base_ctx.path() / "g", "g of the base's context\n");
  p.file("g", "g of the child's context\n");
  std::string base_tag = "cbuild-onbuild-base:" + std::to_string(::getpid());
  p.file("Dockerfile", "FROM " + base_tag + "\nRUN cat /t /g > /out\n");

  // docker's base: triggers recorded as written after ONBUILD, no history entry for them.
  auto made = docker->docker({"build", "--network=none", "-t", base_tag, base_ctx.path().string()});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  TempDir work;
  fs::path saved = work.path() / "base.tar";
  REQUIRE(docker->docker({"save", "-o", saved.string(), base_tag}).exit_code == 0);
  auto loaded = test::run_cbuild({"--root", p.root.string(), "load", "-i", saved.string()});
  REQUIRE_MESSAGE(loaded.exit_code == 0, loaded.err);

  SUBCASE("the base made by docker, loaded") {
    check_child_like_docker(*docker, p, "onbuild-child:1", work.path() / "a");
    auto [mine, root] = p.image("docker.io/library/onbuild-child:1", work.path() / "a2/rootfs");
    CHECK(file_in(root, "t") == "dflt base2 base2-dflt\ntwo spaces continued\n");
    CHECK(file_in(root, "g") == "g of the child's context\n");
    CHECK(mine["config"]["OnBuild"].is_null());
  }
  SUBCASE("a --build-arg reaches the trigger's ARG") {
    check_child_like_docker(*docker, p, "onbuild-child:2", work.path() / "b", {"--build-arg", "V=given"});
  }
  SUBCASE("the child's own ONBUILD is all its config keeps") {
    p.file("Dockerfile", "FROM " + base_tag + "\nONBUILD RUN echo own > /own\n");
    check_child_like_docker(*docker, p, "onbuild-child:3", work.path() / "c");
    auto [mine, root] = p.image("docker.io/library/onbuild-child:3", work.path() / "c2/rootfs");
    CHECK(mine["config"]["OnBuild"] == json::array({"RUN echo own > /own"}));
  }
  SUBCASE("the base made by cbuild --format docker") {
    auto r = test::run_cbuild({"--root", p.root.string(), "--progress=plain", "--format", "docker", "-t", base_tag,
                               base_ctx.path().string()});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    auto [base, base_root] = p.image("docker.io/library/" + base_tag, work.path() / "base/rootfs");
    CHECK(base["config"]["OnBuild"] == json(kTriggers));
    auto docker_base = docker->docker({"image", "inspect", "--format", "{{json .Config.OnBuild}}", base_tag});
    CHECK(json::parse(docker_base.out) == json(kTriggers));
    for (const auto& h : test::history_created_by(base)) CHECK(h.rfind("ONBUILD", 0) == std::string::npos);
    check_child_like_docker(*docker, p, "onbuild-child:4", work.path() / "d");
  }
  docker->docker({"rmi", "-f", base_tag});
}

TEST_CASE("FROM a stage fires the stage's ONBUILD triggers as docker does, and a changed trigger is not a cache hit") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  test::BuildProject p(docker->base());
  auto dockerfile = [&](const std::string& word) {
    return "FROM " + p.base + " AS a\n"
           "ONBUILD RUN echo " + word + " > /x\n"
           "RUN echo a > /a\n"
           "FROM a\n"
           "RUN cat /x > /out\n";
  };
  p.file("Dockerfile", dockerfile("fired-1"));
  TempDir work;
  auto r = p.build({"-t", "onbuild-stage:1", "--format", "docker"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [mine, root] = p.image("docker.io/library/onbuild-stage:1", work.path() / "mine/rootfs");
  CHECK(file_in(root, "out") == "fired-1\n");
  auto theirs = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(theirs.result.exit_code == 0, theirs.result.err);
  CHECK(file_in(root, "x") == file_in(theirs.rootfs, "x"));
  CHECK(history_after(mine, 1) == history_after(theirs.config, 1));
  CHECK(config_field(mine, "OnBuild") == config_field(theirs.config, "OnBuild"));
  CHECK(mine["config"]["OnBuild"].is_null());

  p.file("Dockerfile", dockerfile("fired-2"));
  r = p.build({"-t", "onbuild-stage:2", "--format", "docker"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [again, root2] = p.image("docker.io/library/onbuild-stage:2", work.path() / "mine2/rootfs");
  CHECK(file_in(root2, "out") == "fired-2\n");
}

TEST_CASE("ONBUILD FROM, MAINTAINER and ONBUILD are refused at the ONBUILD line, as docker refuses them") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  const std::pair<const char*, const char*> cases[] = {
      {"ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
      {"FROM x", "FROM isn't allowed as an ONBUILD trigger"},
      {"MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"},
      {"from x", "FROM isn't allowed as an ONBUILD trigger"}};
  for (const auto& [trigger, docker_says] : cases) {
    CAPTURE(trigger);
    test::BuildProject p(docker->base());
    p.file("Dockerfile", "FROM " + p.base + "\nRUN true\nONBUILD " + trigger + "\n");
    TempDir work;
    auto theirs = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    CHECK(theirs.result.exit_code != 0);
    CHECK_MESSAGE(theirs.result.err.find(docker_says) != std::string::npos, theirs.result.err);
    auto r = p.build({"-t", "onbuild-bad:1"});
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find("Dockerfile:3") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find(docker_says) != std::string::npos, r.err);
  }
}

TEST_CASE("a base's trigger that is no instruction, or fails, stops the child at its FROM line naming the trigger") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  // docker 20.10 builds a base with these triggers; the child is where they fail.
  for (std::string trigger : {"BOGUS x", "COPY one", "RUN exit 3", "COPY nothere /n"}) {
    CAPTURE(trigger);
    test::BuildProject p(docker->base());
    TempDir base_ctx, work;
    std::string base_tag = "cbuild-onbuild-bad:" + std::to_string(::getpid());
    write(base_ctx.path() / "Dockerfile", "FROM " + p.base + "\nONBUILD " + trigger + "\n");
    auto made = docker->docker({"build", "--network=none", "-t", base_tag, base_ctx.path().string()});
    REQUIRE_MESSAGE(made.exit_code == 0, made.err);
    fs::path saved = work.path() / "base.tar";
    REQUIRE(docker->docker({"save", "-o", saved.string(), base_tag}).exit_code == 0);
    REQUIRE(test::run_cbuild({"--root", p.root.string(), "load", "-i", saved.string()}).exit_code == 0);
    p.file("Dockerfile", "\nFROM " + base_tag + "\nRUN true\n");
    auto theirs = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    CHECK(theirs.result.exit_code != 0);
    auto r = p.build({"-t", "onbuild-bad-child:1"});
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find("Dockerfile:2") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find(trigger) != std::string::npos, r.err);
    docker->docker({"rmi", "-f", base_tag});
  }
}

TEST_CASE("ARG after an ENV of the same name wins in RUN and expansion but not in the image's Env, as with docker") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  struct Case {
    const char* name;
    const char* body;  // after FROM <base>
    std::vector<std::string> extra;
  };
  const std::string run1 = "RUN echo \"run=$W\" > /r1 && env | grep -E '^W=' > /r1e || true\n";
  const Case cases[] = {
      {"ENV then ARG with a default", "ENV W=a\nARG W=b\n", {}},
      {"ENV then ARG, --build-arg", "ENV W=a\nARG W=b\n", {"--build-arg", "W=c"}},
      {"ENV then ARG without default", "ENV W=a\nARG W\n", {}},
      {"ENV then ARG without default, --build-arg", "ENV W=a\nARG W\n", {"--build-arg", "W=c"}},
      {"ARG then ENV", "ARG W=b\nENV W=a\n", {}},
      {"ARG then ENV, --build-arg", "ARG W=b\nENV W=a\n", {"--build-arg", "W=c"}},
      {"ENV, ARG, ENV", "ENV W=a\nARG W=b\nENV W=c\n", {}},
      {"ARG repeated, one without a value", "ENV W=a\nARG W=b\nARG Q\nRUN echo \"q=$W\" > /r0\nARG W=d\n", {}},
  };
  SUBCASE("each case, compared with docker") {
    for (const Case& c : cases) {
      std::string name = c.name;
      CAPTURE(name);
      test::BuildProject p(docker->base());
      p.file("Dockerfile", "FROM " + p.base + "\n" + c.body + run1 + "ENV X=$W\nWORKDIR /wd-$W\nRUN echo \"x=$X\" > /r2\n");
      TempDir work;
      std::vector<std::string> args{"-t", "argenv:1", "--format", "docker"};
      args.insert(args.end(), c.extra.begin(), c.extra.end());
      auto r = p.build(args);
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      auto [mine, root] = p.image("docker.io/library/argenv:1", work.path() / "mine/rootfs");
      auto theirs = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker", c.extra);
      REQUIRE_MESSAGE(theirs.result.exit_code == 0, theirs.result.err);
      for (const char* f : {"r0", "r1", "r1e", "r2"}) {
        CAPTURE(f);
        CHECK(file_in(root, f) == file_in(theirs.rootfs, f));
      }
      CHECK(config_field(mine, "Env") == config_field(theirs.config, "Env"));
      CHECK(config_field(mine, "WorkingDir") == config_field(theirs.config, "WorkingDir"));
      CHECK(history_after(mine, 1) == history_after(theirs.config, 1));
    }
  }
  SUBCASE("the first case, spelled out") {
    test::BuildProject p(docker->base());
    p.file("Dockerfile", "FROM " + p.base + "\nENV W=a\nARG W=b\n" + run1 + "ENV X=$W\n");
    REQUIRE(p.build({"-t", "argenv:2"}).exit_code == 0);
    TempDir work;
    auto [mine, root] = p.image("docker.io/library/argenv:2", work.path() / "rootfs");
    CHECK(file_in(root, "r1") == "run=b\n");
    CHECK(file_in(root, "r1e") == "W=b\n");
    CHECK(mine["config"]["Env"].dump().find("\"W=a\"") != std::string::npos);
    CHECK(mine["config"]["Env"].dump().find("\"X=b\"") != std::string::npos);
  }
  SUBCASE("a stage built on a stage: the base's Env wins over its ARG, other ARGs stay visible") {
    test::BuildProject p(docker->base());
    p.file("Dockerfile", "FROM " + p.base + " AS s1\nENV W=a\nARG W=b\nARG Y=y\nFROM s1\n"
                         "RUN echo \"run=$W y=$Y\" > /r1\nENV X=$W\n");
    TempDir work;
    auto r = p.build({"-t", "argenv:3", "--format", "docker"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    auto [mine, root] = p.image("docker.io/library/argenv:3", work.path() / "mine/rootfs");
    auto theirs = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    REQUIRE_MESSAGE(theirs.result.exit_code == 0, theirs.result.err);
    CHECK(file_in(root, "r1") == file_in(theirs.rootfs, "r1"));
    CHECK(file_in(root, "r1") == "run=a y=y\n");
    CHECK(config_field(mine, "Env") == config_field(theirs.config, "Env"));
    CHECK(history_after(mine, 1) == history_after(theirs.config, 1));
  }
}

TEST_CASE("a base with ONBUILD triggers that the build has to pull runs them on the first build") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  TempDir base_ctx;
  write(base_ctx.path() / "Dockerfile", "FROM " + p.base + "\nONBUILD RUN echo fired > /fired\n");
  auto made = test::run_cbuild({"--root", p.root.string(), "--progress=plain", "--format", "docker", "-t",
                                "onbuild-remote:1", base_ctx.path().string()});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
  test::RegistryServer registry;
  std::string remote = registry.host() + "/test/onbuild:1";
  auto push = test::run_cbuild({"--root", p.root.string(), "push", "docker.io/library/onbuild-remote:1", remote});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);

  test::BuildProject fresh(test::base_for_test());
  fresh.file("Dockerfile", "FROM " + remote + "\nRUN cat /fired\n");
  // The build pulls its base before the plan is final, so the triggers fire the first time,
  // and a second build is the same image, every step cached.
  auto r = fresh.build({"-t", "onbuild-pulled:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK_MESSAGE(r.err.find("pulling") != std::string::npos, r.err);
  TempDir work;
  auto [config, root] = fresh.image("docker.io/library/onbuild-pulled:1", work.path() / "rootfs");
  CHECK(file_in(root, "fired") == "fired\n");
  CHECK(config["config"].value("OnBuild", json()).is_null());
  auto first = oci::LayoutStore::open(fresh.root)->resolve("docker.io/library/onbuild-pulled:1");
  r = fresh.build({"-t", "onbuild-pulled:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::size_t cached = 0;
  for (std::size_t at = r.err.find("CACHED"); at != std::string::npos; at = r.err.find("CACHED", at + 1)) ++cached;
  CHECK_MESSAGE(cached == 2, r.err);
  auto second = oci::LayoutStore::open(fresh.root)->resolve("docker.io/library/onbuild-pulled:1");
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->digest == second->digest);
}
