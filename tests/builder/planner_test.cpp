// Planner (builder/plan/planner.h): stages, ARG/ENV scoping, expansion, DAG, --target, cache inputs.
#include "builder/plan/planner.h"

#include <doctest/doctest.h>

#include "builder/dockerfile/dockerfile_error.h"
#include "tests/support/run_command.h"
#include "oci/base/fs.h"

using namespace cbuild;
using namespace cbuild::builder;
namespace df = cbuild::builder::dockerfile;

namespace {
Plan plan_of(const std::string& text, PlanOptions o = {}) {
  if (o.build_platform.empty()) o.build_platform = "linux/amd64";
  return plan_dockerfile(text, "Dockerfile", o);
}
std::string error_of(const std::string& text, PlanOptions o = {}) {
  try {
    plan_of(text, std::move(o));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
template <class T>
const T& instr(const Plan& p, int stage, int step) {
  return std::get<T>(p.stages.at(stage).steps.at(step).instruction);
}
}  // namespace

TEST_CASE("planner: global ARGs only in FROM unless redeclared; build-args override") {
  PlanOptions o;
  o.build_args = {{"VER", "3.20"}, {"UNUSED", "1"}};
  Plan p = plan_of(
      "ARG VER=3.19\nARG BASE=alpine:${VER}\n"
      "FROM --platform=$BUILDPLATFORM $BASE AS b\n"
      "WORKDIR /w/$VER\n"
      "ARG VER\n"
      "WORKDIR /w/$VER/$TARGETARCH\n"
      "ARG TARGETARCH\n"
      "LABEL arch=$TARGETARCH\n",
      o);
  REQUIRE(p.stages.size() == 1);
  CHECK(p.stages[0].base == Stage::Base::Image);
  CHECK(p.stages[0].base_image == "alpine:3.20");
  CHECK(p.stages[0].platform == "linux/amd64");
  CHECK(instr<df::WorkdirInstr>(p, 0, 0).path == "/w/");
  CHECK(instr<df::WorkdirInstr>(p, 0, 2).path == "/w/3.20/");
  CHECK(instr<df::LabelInstr>(p, 0, 4).pairs[0].value == "amd64");
  REQUIRE(p.warnings.size() == 1);
  CHECK(p.warnings[0].message.find("UNUSED") != std::string::npos);
}

TEST_CASE("planner: ENV pairs expand against the env before the instruction; a later ARG beats ENV") {
  Plan p = plan_of(
      "FROM scratch\nENV A=1\nENV A=2 B=$A\nARG A=arg\nENV C=$A\nARG D=x\nRUN echo $A\n");
  const auto& e = instr<df::EnvInstr>(p, 0, 1);
  CHECK(e.pairs[0].value == "2");
  CHECK(e.pairs[1].value == "1");
  CHECK(instr<df::EnvInstr>(p, 0, 3).pairs[0].value == "arg");  // as docker: ARG A came later
  const Step& run = p.stages[0].steps.at(5);
  CHECK(instr<df::RunInstr>(p, 0, 5).command[0] == "echo $A");  // RUN bodies are not expanded
  CHECK(run.env == EnvList{{"PATH", kDefaultPath}, {"A", "arg"}, {"B", "1"}, {"C", "arg"}, {"D", "x"}});
  CHECK(run.args == EnvList{{"A", "arg"}, {"D", "x"}});
  CHECK(cache_inputs(run).find("arg \"D\"=\"x\"") != std::string::npos);
}

TEST_CASE("planner: stage DAG, --target pruning, skipped stages, image_env") {
  std::string df =
      "FROM golang AS build\nWORKDIR $GOPATH/src\nRUN go build\n"
      "FROM alpine AS unused\nRUN false\n"
      "FROM build AS test\nCOPY --from=0 /a /b\nRUN --mount=type=bind,from=tools,target=/t true\n"
      "FROM busybox AS tools\n"
      "FROM scratch\nCOPY --from=build /out /\nCOPY --from=nginx:1 /etc/nginx /n\n";
  PlanOptions o;
  o.image_env = [](const std::string& image, const std::string&) -> std::optional<EnvList> {
    if (image == "golang") return EnvList{{"GOPATH", "/go"}};
    return std::nullopt;
  };
  Plan p = plan_of(df, o);
  REQUIRE(p.stages.size() == 5);
  CHECK(p.target == 4);
  CHECK(p.order == std::vector<int>{0, 4});
  CHECK_FALSE(p.stages[1].needed);
  CHECK(instr<df::WorkdirInstr>(p, 0, 0).path == "/go/src");
  CHECK(p.stages[2].base == Stage::Base::Stage);
  CHECK(p.stages[2].base_stage == 0);
  CHECK(p.stages[4].image_deps == std::vector<std::string>{"nginx:1"});
  CHECK(find_stage(p, "TOOLS") == 3);
  CHECK_FALSE(find_stage(p, "nginx:1"));
  o.target = "test";
  Plan t = plan_of(df, o);
  CHECK(t.target == 2);
  CHECK(t.order == std::vector<int>{0, 3, 2});
  CHECK(t.stages[2].steps[0].env == EnvList{{"PATH", kDefaultPath}, {"GOPATH", "/go"}});
  o.target = "nope";
  CHECK(error_of(df, o).find("no build stage named \"nope\"") != std::string::npos);
}

TEST_CASE("planner: cycles, bad indexes, errors in skipped stages, cache inputs differ") {
  CHECK(error_of("FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /\n")
            .find("circular dependency detected") != std::string::npos);
  CHECK(error_of("FROM a AS x\nCOPY --from=x / /\n").find("Dockerfile:2: COPY --from: circular dependency") == 0);
  CHECK(error_of("FROM a\nCOPY --from=7 / /\n").find("no stage with index 7") != std::string::npos);
  CHECK(error_of("FROM a\nWORKDIR ${X:?is required}\n") == "Dockerfile:2: WORKDIR: failed to process \"${X:?is required}\": X: is required");
  // An error in a stage the target does not need is not reported (as in BuildKit).
  CHECK(error_of("FROM a AS bad\nWORKDIR ${X:?x}\nFROM b\nRUN true\n").empty());
  CHECK(error_of("RUN x\nFROM a\n").find("RUN is not allowed before the first FROM") != std::string::npos);
  CHECK(error_of("FROM a\nEXPOSE 80/tcp 99999\n").find("EXPOSE: invalid containerPort \"99999\"") != std::string::npos);
  CHECK(error_of("FROM a\nCOPY --chmod=999 a b\n").find("invalid --chmod") != std::string::npos);
  PlanOptions o1, o2;
  o1.build_args = {{"V", "1"}, {"HTTP_PROXY", "http://p1"}};
  o2.build_args = {{"V", "2"}, {"HTTP_PROXY", "http://p2"}};
  std::string df = "FROM a\nARG V\nRUN echo\n";
  Plan a = plan_of(df, o1), b = plan_of(df, o2);
  CHECK(cache_inputs(a.stages[0].steps[1]) != cache_inputs(b.stages[0].steps[1]));
  o2.build_args["V"] = "1";
  Plan c = plan_of(df, o2);
  CHECK(cache_inputs(a.stages[0].steps[1]) == cache_inputs(c.stages[0].steps[1]));  // proxies excluded
  CHECK(c.stages[0].steps[1].args == EnvList{{"V", "1"}, {"HTTP_PROXY", "http://p2"}});
}

TEST_CASE("cbuild check: warnings and errors on stderr as FILE:LINE: message") {
  TempDir dir;
  std::string good = (dir.path() / "Dockerfile").string();
  write_file_atomic(good, "FROM a\nMAINTAINER me\n");
  auto r = test::run_cbuild({"check", "-f", good});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find(good + ":2: MAINTAINER is deprecated") != std::string::npos);
  CHECK(r.out.find("MAINTAINER") == std::string::npos);
  std::string bad = (dir.path() / "bad").string();
  write_file_atomic(bad, "FROM a\n\nCOPPY x y\n");
  r = test::run_cbuild({"check", bad});
  CHECK(r.exit_code == 1);
  CHECK(r.err == bad + ":3: unknown instruction: COPPY (did you mean COPY?)\n");
}
