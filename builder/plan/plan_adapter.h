// From the front end's Plan (Dockerfile semantics, words expanded) to the executor's ExecPlan
// (what to do to the image): docker build's rules for each instruction live here — how a
// shell form is wrapped, which config fields an instruction sets, what the history entry says
// (BuildKit's created_by strings), what ENTRYPOINT does to an inherited CMD. The filesystem
// work itself is the stage runner's.
#pragma once

#include "builder/plan/exec_plan.h"
#include "builder/plan/plan.h"

namespace cbuild::builder {

// Throws DockerfileError ("FILE:LINE: message") for what the executor cannot do yet or for
// values that are only checked here (a --chmod that is not octal).
ExecPlan to_exec_plan(const Plan& plan);

// Go's %q formatting of a string list, as BuildKit writes CMD/ENTRYPOINT history:
// ["/bin/sh" "-c" "echo hi"].
std::string go_quoted_list(const std::vector<std::string>& words);

// The SHELL in effect: the config's docker "Shell", else ["/bin/sh", "-c"].
std::vector<std::string> shell_of(const ConfigDoc& config);

}  // namespace cbuild::builder
