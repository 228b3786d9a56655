// What BuildKit (docker 20.10's, the reference) writes that the public-Dockerfile differential
// cases showed cbuild writing differently, pinned here without docker: Go's formatting of
// durations and rune literals, the HEALTHCHECK and RUN history texts, and the PATH a stage
// starts with when its base sets none. The expected strings are docker's own output.
#include <doctest/doctest.h>

#include "builder/dockerfile/ast.h"
#include "builder/dockerfile/instructions.h"
#include "builder/plan/planner.h"
#include "builder/steps/stage_runner.h"

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

// The "K=V ..." part of each RUN's history text in the last stage (the runner writes
// "RUN |N " + this + the shell words).
std::vector<std::string> run_history_args(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& s : p.stages.back().steps)
    if (std::holds_alternative<df::RunInstr>(s.instruction)) {
      // "|N K=V … " → "K=V …"
      std::string h = s.history_args;
      if (!h.empty()) h = h.substr(h.find(' ') + 1, h.size() - h.find(' ') - 2);
      out.push_back(h);
    }
  return out;
}

}  // namespace

TEST_CASE("Go's Duration.String() as BuildKit's history shows it") {
  CHECK(df::go_duration_string(0) == "0s");
  CHECK(df::go_duration_string(90'000'000'000) == "1m30s");
  CHECK(df::go_duration_string(1'500'000'000) == "1.5s");
  CHECK(df::go_duration_string(3'720'000'000'000) == "1h2m0s");
  CHECK(df::go_duration_string(360'000'000'000'000'000) == "100000h0m0s");
  CHECK(df::go_duration_string(1'500'000) == "1.5ms");
  CHECK(df::go_duration_string(2'500) == "2.5\xC2\xB5s");
  CHECK(df::go_duration_string(999) == "999ns");
  CHECK(df::go_duration_string(3'600'000'000'001) == "1h0m0.000000001s");
  CHECK(df::go_duration_string(-1'000'000) == "-1ms");
}

TEST_CASE("Go's %q of an integer is a rune literal") {
  CHECK(df::go_quote_rune(0) == "'\\x00'");
  CHECK(df::go_quote_rune(3) == "'\\x03'");
  CHECK(df::go_quote_rune(60) == "'<'");
  CHECK(df::go_quote_rune(127) == "'\\x7f'");
  CHECK(df::go_quote_rune(160) == "'\\u00a0'");
  CHECK(df::go_quote_rune(200) == "'\xC3\x88'");
  CHECK(df::go_quote_rune('\'') == "'\\''");
  CHECK(df::go_quote_rune('"') == "'\"'");
  CHECK(df::go_quote_rune('\n') == "'\\n'");
  CHECK(df::go_quote_rune(0x110000) == "'\xEF\xBF\xBD'");
}

// docker 20.10: HEALTHCHECK &{["CMD" "a\tb" "é\x01"] "1m30s" "1.5s" "1h2m0s" 'È'} and the others below.
TEST_CASE("HEALTHCHECK history text is Go's %q of the HealthConfig, as docker writes it") {
  Plan p = plan_of(
      "FROM scratch\n"
      "HEALTHCHECK --interval=90s --timeout=1500ms --start-period=1h2m --retries=200 CMD [\"a\\tb\", \"\xC3\xA9\\u0001\"]\n"
      "HEALTHCHECK --retries=3 CMD x\n"
      "HEALTHCHECK NONE\n"
      "HEALTHCHECK --interval=1.5ms --timeout=100000h CMD y\n"
      "HEALTHCHECK --interval=10s --timeout=10s --start-period=10s --retries=60 CMD wget --spider -q http://localhost:80\n");
  const auto& steps = p.stages[0].steps;
  REQUIRE(steps.size() == 5);
  CHECK(steps[0].expanded_text == "HEALTHCHECK &{[\"CMD\" \"a\\tb\" \"\xC3\xA9\\x01\"] \"1m30s\" \"1.5s\" \"1h2m0s\" '\xC3\x88'}");
  CHECK(steps[1].expanded_text == "HEALTHCHECK &{[\"CMD-SHELL\" \"x\"] \"0s\" \"0s\" \"0s\" '\\x03'}");
  CHECK(steps[2].expanded_text == "HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" '\\x00'}");
  CHECK(steps[3].expanded_text == "HEALTHCHECK &{[\"CMD-SHELL\" \"y\"] \"1.5ms\" \"100000h0m0s\" \"0s\" '\\x00'}");
  CHECK(steps[4].expanded_text ==
        "HEALTHCHECK &{[\"CMD-SHELL\" \"wget --spider -q http://localhost:80\"] \"10s\" \"10s\" \"10s\" '<'}");
}

// docker 20.10, for the Dockerfile below: RUN |6 A= B=b2 G=g B=b2 C=argc D=envd, then with E=:
// the later of ARG and ENV gives the value (ARG C after ENV C, ENV D after ARG D).
TEST_CASE("RUN history lists every ARG declaration in order, valueless ones empty, the later of ARG and ENV winning") {
  PlanOptions o;
  o.build_args = {{"HTTP_PROXY", "http://proxy"}};  // undeclared: reaches RUN, never its history
  Plan p = plan_of("ARG G=g\nFROM scratch\nARG A\nARG B=b\nARG G\nARG B=b2\nENV C=1\nARG C=argc\nARG D=d\nENV D=envd\nRUN true\n"
                   "ARG E\nRUN true\nENV E=late\nRUN true\n",
                   o);
  CHECK(run_history_args(p) == std::vector<std::string>{"A= B=b2 G=g B=b2 C=argc D=envd",
                                                         "A= B=b2 G=g B=b2 C=argc D=envd E=",
                                                         "A= B=b2 G=g B=b2 C=argc D=envd E=late"});
}

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
