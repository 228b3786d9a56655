// What BuildKit (docker 20.10's, the reference) writes that the public-Dockerfile differential
// cases showed cbuild writing differently, pinned here without docker: Go's formatting of
// durations and rune literals, the HEALTHCHECK and RUN history texts, and the PATH a stage
// starts with when its base sets none. The expected strings are docker's own output.
#include <doctest/doctest.h>

#include "builder/planner.h"
#include "builder/stage_runner.h"

using namespace cbuild;
using namespace cbuild::builder;
namespace df = cbuild::builder::dockerfile;

namespace {

Plan plan_of(const std::string& text, PlanOptions o = {}) {
  if (o.build_platform.empty()) o.build_platform = "linux/amd64";
  return plan_dockerfile(text, "Dockerfile", o);
}

template <class T>
const T& instr(const Plan& p, int stage, int step) {
  return std::get<T>(p.stages.at(stage).steps.at(step).instruction);
}

}  // namespace

// docker 20.10: `FROM <image without Env>` then `ENV PATH $PATH:/usr/lib/postgresql/15/bin` gives
// PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/15/bin.
TEST_CASE("$PATH expands to the default PATH when the base sets none (scratch or an image without PATH)") {
  PlanOptions o;
  o.image_env = [](const std::string& image, const std::string&) -> std::optional<EnvList> {
    if (image == "withpath") return EnvList{{"PATH", "/opt/bin"}};
    return EnvList{};
  };
  Plan p = plan_of("FROM scratch\nENV PATH=$PATH:/x\nFROM nopath\nENV PATH $PATH:/y\n"
                   "FROM withpath\nENV PATH=$PATH:/z\n",
                   o);
  CHECK(instr<df::EnvInstr>(p, 0, 0).pairs[0].value == std::string(kDefaultPath) + ":/x");
  CHECK(instr<df::EnvInstr>(p, 1, 0).pairs[0].value == std::string(kDefaultPath) + ":/y");
  CHECK(instr<df::EnvInstr>(p, 2, 0).pairs[0].value == "/opt/bin:/z");
}

// docker 20.10: FROM scratch gives Env [PATH=<default>] and WorkingDir "/".
TEST_CASE("FROM scratch starts from BuildKit's empty image config: WorkingDir / and the default PATH") {
  ConfigDoc c = scratch_config("linux/amd64");
  apply_from_defaults(c);
  CHECK(c["config"]["WorkingDir"] == "/");
  CHECK(c["config"]["Env"] == nlohmann::json::array({std::string("PATH=") + kDefaultPath}));
}
