// Plan — the front end's output: the stages a build needs, each a list of steps whose words
// are already expanded exactly where BuildKit expands them, with the ARG/ENV scope and the
// cache-key inputs of every step. The executor walks Plan::order and never re-reads the
// Dockerfile; builder/plan/planner.h makes a Plan from Dockerfile text.
//
// Scoping rules applied by the planner (BuildKit's):
//   * ARGs before the first FROM ("global") are visible only in FROM lines (image and
//     --platform) unless a stage redeclares them with `ARG NAME`.
//   * Predefined ARGs TARGETPLATFORM/TARGETOS/TARGETARCH/TARGETVARIANT and
//     BUILDPLATFORM/BUILDOS/BUILDARCH/BUILDVARIANT are set globally and inside a stage
//     once declared; the *_PROXY args (upper and lower case) reach RUN without a
//     declaration when given with --build-arg, and are left out of cache keys.
//   * Of an ENV and an ARG of the same name, the later one wins in expansion and in RUN's
//     environment (`ENV W=a` then `ARG W=b`: $W is b), as in BuildKit; only ENV reaches the
//     image's Env. ENV/LABEL/ARG with several pairs expand every value against the scope as
//     it was before the instruction.
//   * The base's ONBUILD triggers (PlanOptions::image_onbuild for an image, the ONBUILD lines
//     of a base stage) are planned as the first steps of the stage, in this stage's scope;
//     a trigger that is not one valid instruction is an error at the FROM line.
//   * A stage based on another stage inherits its ENV (and the base image's Env, when
//     PlanOptions::image_env can supply it).
// Plain data, copyable, no hidden state.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "builder/dockerfile/ast.h"
#include "builder/dockerfile/instructions.h"

namespace cbuild::builder {

using EnvList = std::vector<std::pair<std::string, std::string>>;  // ordered NAME, VALUE

// An immutable EnvList shared between steps: the steps of a stage see the same scope until an
// ENV or ARG changes it, so they share one copy instead of each holding its own (a 10 MB
// Dockerfile would otherwise hold hundreds of MB of identical lists). Reads like a const EnvList.
class EnvSnapshot {
 public:
  EnvSnapshot() : list_(empty_list()) {}
  explicit EnvSnapshot(std::shared_ptr<const EnvList> list) : list_(list ? std::move(list) : empty_list()) {}
  const EnvList& get() const noexcept { return *list_; }
  operator const EnvList&() const noexcept { return *list_; }  // NOLINT: reads as the list
  EnvList::const_iterator begin() const noexcept { return list_->begin(); }
  EnvList::const_iterator end() const noexcept { return list_->end(); }
  std::size_t size() const noexcept { return list_->size(); }
  bool empty() const noexcept { return list_->empty(); }
  friend bool operator==(const EnvSnapshot& a, const EnvList& b) { return *a.list_ == b; }
  friend bool operator==(const EnvSnapshot& a, const EnvSnapshot& b) { return *a.list_ == *b.list_; }

 private:
  static std::shared_ptr<const EnvList> empty_list() {
    static const auto e = std::make_shared<const EnvList>();
    return e;
  }
  std::shared_ptr<const EnvList> list_;
};

// The PATH a stage starts with when its base sets none (scratch, or an image whose Env has no
// PATH), as in BuildKit: it is in the image config's Env and `$PATH` in the Dockerfile expands
// to it.
inline constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct PlanOptions {
  std::map<std::string, std::string> build_args;  // --build-arg NAME=VALUE
  std::string target;                              // --target; empty: the last stage
  std::string target_platform;                     // "os/arch[/variant]"; empty: build platform
  std::string build_platform;                      // empty: the host's (linux/<arch>)
  // Called once per FROM that names an image (reference and platform already expanded; the
  // platform is empty when neither FROM --platform nor --platform names one):
  // the image config's Env as NAME=VALUE pairs, so that words expand against it as in
  // BuildKit (`FROM golang` then `WORKDIR $GOPATH`). Unset or returning nullopt: empty.
  std::function<std::optional<EnvList>(const std::string& image, const std::string& platform)> image_env;
  // Likewise the image config's OnBuild triggers; nullopt when the image is not known (the
  // executor then refuses an image that turns out to have triggers: ExecStage::base_onbuild).
  std::function<std::optional<std::vector<std::string>>(const std::string& image, const std::string& platform)>
      image_onbuild;
};

struct Step {
  // The typed instruction with its words expanded (FROM is not a step; see Stage).
  // RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK bodies stay unexpanded (the shell expands them).
  // Heredoc bodies are chomped; `expand` says whether the executor's shell should expand.
  dockerfile::Instruction instruction;
  std::string keyword;        // "RUN", "COPY", …
  std::string original;       // as written, for progress ("RUN make")
  dockerfile::SourceRange range;
  std::string expanded_text;  // canonical "KEYWORD [flags] args" after expansion
  // Before this step: the variables words expand against and RUN gets (the base image's
  // Env, then ENV and ARG values, the later of the two winning for a name), and the ARGs in
  // scope with a value (RUN's history, proxy args).
  EnvSnapshot env;
  EnvSnapshot args;
  std::string history_args;  // RUN: BuildKit's "|N K=V " prefix of its history entry
};

// Everything a step's result depends on besides its parent layer and files read: its
// expanded_text, heredoc bodies, env and args (proxy args excluded), as one deterministic
// string. Rendered on demand rather than kept in every Step: it spells out the whole scope, so
// a big Dockerfile's steps would otherwise hold many copies of the same ENV/ARG lists.
std::string cache_inputs(const Step& step);

struct Stage {
  int index = 0;
  std::string name;  // AS name, lower-case; empty when unnamed
  enum class Base { Scratch, Image, Stage } base = Base::Scratch;
  std::string base_image;  // Base::Image: the expanded reference as written
  int base_stage = -1;     // Base::Stage
  std::string platform;    // FROM --platform after expansion; empty when not given
  // Base::Image: the image's ONBUILD triggers as the plan fired them (its first steps);
  // nullopt when PlanOptions::image_onbuild did not know the image.
  std::optional<std::vector<std::string>> image_onbuild;
  dockerfile::SourceRange range;  // the FROM line
  std::string from_original;      // the FROM line as written
  std::vector<Step> steps;
  std::vector<int> stage_deps;          // stages this one needs (base, COPY --from, mount from)
  std::vector<std::string> image_deps;  // images named by COPY --from / RUN --mount from=
  bool needed = false;                  // the target depends on it (else it is skipped)
};

struct Plan {
  std::string file;  // the Dockerfile name used in messages
  dockerfile::Directives directives;
  std::vector<Stage> stages;  // every stage, in Dockerfile order
  int target = -1;            // index of the stage whose image is the result
  std::vector<int> order;     // needed stages, dependencies first
  EnvList global_args;        // global ARGs (and predefined ones) as resolved for FROM lines
  std::vector<dockerfile::DockerfileWarning> warnings;  // parse + typing + planning warnings
};

// Index of the stage a `--from` / `from=` value names (name, case-insensitive, or index),
// or nullopt when it names an image instead.
std::optional<int> find_stage(const Plan& plan, const std::string& name_or_index);

}  // namespace cbuild::builder
