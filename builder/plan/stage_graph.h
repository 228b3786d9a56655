// Running the stages of a build as a graph: a stage starts once every stage it needs (its FROM
// stage, COPY --from / RUN --mount from stages) has finished, and up to `jobs` stages run at
// the same time, each on its own thread. Independent stages therefore overlap, while every
// stage still sees exactly the inputs it would see in a serial build — so the image and its
// digests do not depend on the scheduling.
//
// Failure: the first stage that throws stops the build. No further stage starts, the stages
// still running are cancelled through a CancelSource their threads have entered (oci/base/
// cancel.h: their RUN children are killed, mounts undone as the stacks unwind), and once every
// thread has returned the first exception is rethrown — later ones (mostly "cancelled") are
// dropped. A Ctrl-C reaches the workers through the process-wide flag as before.
#pragma once

#include <functional>
#include <vector>

#include "builder/plan/exec_plan.h"

namespace cbuild::builder {

// The stages `stage` needs finished before it can start (deduplicated, ascending).
std::vector<int> stage_needs(const ExecStage& stage);

// Runs run(i) for every node of `order` once all of needs[i] have run. Among ready nodes the
// one earliest in `order` starts first, so jobs == 1 runs serially, on the calling thread, in
// a dependency order that follows `order`. needs[i] may name only nodes of `order`; a cycle or
// an unknown node throws Error{Internal}. jobs < 1 means 1.
void run_graph(const std::vector<int>& order, const std::vector<std::vector<int>>& needs, int jobs,
               const std::function<void(int)>& run);

// The default parallelism: the machine's cores, at least 2 (a stage mostly waits on a RUN or
// on disk, so two overlap well even on one core).
int default_jobs();

}  // namespace cbuild::builder
