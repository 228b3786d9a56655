// The planner: Dockerfile text → Plan (builder/plan/plan.h). Parses, types, scopes ARG/ENV,
// expands words, resolves the stage DAG (FROM stage, COPY --from, RUN --mount from=),
// prunes to --target and orders the needed stages. Pure computation: the only outside
// input is PlanOptions::image_env. Throws DockerfileError ("FILE:LINE: message") for any
// problem in the Dockerfile (unknown instruction, bad flag, unknown stage, cycle, unset
// variable in ${V:?}, unknown --target…); warnings (unused --build-arg, deprecated
// MAINTAINER, …) go to Plan::warnings. Hostile input is bounded: all the word expansion of
// one Dockerfile shares one df::ExpansionBudget (shell_words.h: a word of at most 8 Mi
// characters, 256 Mi units of work in all), and the ENV/ARG scopes its steps carry add up to
// at most 5,000,000 entries and 256 MiB (a fired ONBUILD trigger counts as
// 512 bytes and more); beyond that a DockerfileError names the line.
// Invalid UTF-8 in the text or the build-args is read as U+FFFD, one per byte, as docker
// reads it (valid_utf8.h). Thread-safe (no shared state).
#pragma once

#include <string_view>

#include "builder/plan/plan.h"

namespace cbuild::builder {

Plan plan_dockerfile(std::string_view text, std::string_view file_name, const PlanOptions& options);

// The platform of this machine as "linux/<GOARCH>[/variant]" (linux/amd64, linux/arm64…).
std::string host_platform();

}  // namespace cbuild::builder
