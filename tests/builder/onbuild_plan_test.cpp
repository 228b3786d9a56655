// ONBUILD in the planner (no root): a base's triggers become the first steps of the stage that
// builds on it, at its FROM line and in its scope; what docker refuses as a trigger is refused
// at that FROM line, naming the trigger.
#include <doctest/doctest.h>

#include "builder/plan/planner.h"
#include "oci/base/error.h"

using namespace cbuild;
using namespace cbuild::builder;
namespace df = cbuild::builder::dockerfile;

namespace {

PlanOptions with_triggers(std::vector<std::string> triggers) {
  PlanOptions o;
  o.build_platform = "linux/amd64";
  o.image_env = [](const std::string& image, const std::string&) -> std::optional<EnvList> {
    if (image == "base") return EnvList{{"E", "from-image"}};
    return std::nullopt;
  };
  o.image_onbuild = [triggers](const std::string& image, const std::string&) -> std::optional<std::vector<std::string>> {
    if (image == "base") return triggers;
    return std::nullopt;
  };
  return o;
}

std::string error_of(const std::string& text, const PlanOptions& o) {
  try {
    plan_dockerfile(text, "Dockerfile", o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("planner: an image's ONBUILD triggers are the stage's first steps, at its FROM line, in its scope") {
  PlanOptions o = with_triggers({"ARG V=d", "ENV X=$E-$V", "RUN echo $X"});
  o.build_args = {{"V", "given"}};
  Plan p = plan_dockerfile("# c\nFROM base\nRUN true\n", "Dockerfile", o);
  const Stage& s = p.stages.at(0);
  REQUIRE(s.steps.size() == 4);
  CHECK(s.image_onbuild == std::vector<std::string>{"ARG V=d", "ENV X=$E-$V", "RUN echo $X"});
  CHECK(s.steps[0].keyword == "ARG");
  CHECK(s.steps[1].range.start_line == 2);
  CHECK(s.steps[1].original == "ONBUILD ENV X=$E-$V");
  CHECK(std::get<df::EnvInstr>(s.steps[1].instruction).pairs.at(0).value == "from-image-given");
  CHECK(s.steps[2].history_args == "|1 V=given ");
  CHECK(s.steps[3].original == "RUN true");
  CHECK(p.warnings.empty());  // the trigger's ARG consumed --build-arg V
}

TEST_CASE("planner: a stage's ONBUILD fires in FROM stage, not in COPY --from, and not twice") {
  Plan p = plan_dockerfile(
      "FROM scratch AS a\nONBUILD COPY f /f\nFROM a AS b\nFROM b\nCOPY --from=a /f /g\n", "Dockerfile",
      with_triggers({}));
  REQUIRE(p.stages.size() == 3);
  CHECK(p.stages[0].steps.size() == 1);  // the ONBUILD itself
  REQUIRE(p.stages[1].steps.size() == 1);
  CHECK(p.stages[1].steps[0].original == "ONBUILD COPY f /f");
  CHECK(p.stages[1].steps[0].range.start_line == 3);
  CHECK(p.stages[2].steps.size() == 1);  // b recorded none of its own: only the COPY --from
}

TEST_CASE("planner: a trigger docker cannot run is an error at the FROM line naming it") {
  const std::pair<std::string, std::string> cases[] = {
      {"FROM x", "FROM isn't allowed as an ONBUILD trigger"},
      {"maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"},
      {"ONBUILD RUN x", "Chaining ONBUILD"},
      {"RUN a\nRUN b", "onbuild trigger should be a single expression"},
      {"BOGUS x", "unknown instruction: BOGUS"},
      {"COPY one", "COPY"},
      {"WORKDIR ${NOPE:?unset}", "NOPE"},
  };
  for (const auto& [trigger, says] : cases) {
    CAPTURE(trigger);
    std::string e = error_of("\nFROM base\nRUN true\n", with_triggers({"RUN fine", trigger}));
    CHECK_MESSAGE(e.rfind("Dockerfile:2: ", 0) == 0, e);
    CHECK_MESSAGE(e.find(says) != std::string::npos, e);
    CHECK_MESSAGE(e.find("ONBUILD trigger") != std::string::npos, e);
  }
}

TEST_CASE("planner: triggers fired again by many stages stop at the planning budget, not at memory's end") {
  std::string text = "FROM scratch AS a\n";
  for (int i = 0; i < 3000; ++i) text += "ONBUILD RUN " + std::to_string(i) + "\n";
  for (int i = 0; i < 3000; ++i) text += "FROM a\n";
  std::string e = error_of(text, with_triggers({}));
  CHECK_MESSAGE(e.find("Dockerfile too large to plan") != std::string::npos, e);
}
