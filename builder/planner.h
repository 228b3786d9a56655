// The planner: Dockerfile text → Plan (builder/plan.h). Parses, types, scopes ARG/ENV,
// expands words, resolves the stage DAG (FROM stage, COPY --from, RUN --mount from=),
// prunes to --target and orders the needed stages. Pure computation: the only outside
// input is PlanOptions::image_env. Throws DockerfileError ("FILE:LINE: message") for any
// problem in the Dockerfile (unknown instruction, bad flag, unknown stage, cycle, unset
// variable in ${V:?}, unknown --target…); warnings (unused --build-arg, deprecated
// MAINTAINER, …) go to Plan::warnings. Thread-safe (no shared state).
#pragma once

#include <string_view>

#include "builder/plan.h"

namespace cbuild::builder {

Plan plan_dockerfile(std::string_view text, std::string_view file_name, const PlanOptions& options);

// The platform of this machine as "linux/<GOARCH>[/variant]" (linux/amd64, linux/arm64…).
std::string host_platform();

}  // namespace cbuild::builder
