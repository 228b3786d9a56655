// Running a RUN command in a rootfs with its output streamed to Progress, line by line, and
// the last lines kept for the error message docker users expect when a RUN fails.
#pragma once

#include <deque>
#include <string>

#include "builder/plan/progress.h"
#include "overlay/sandbox.h"

namespace cbuild::builder {

struct RunOutcome {
  overlay::ExitStatus status;
  std::deque<std::string> tail;  // the last lines of stdout+stderr (at most 20)
};

// Runs spec in the sandbox (with `chroot`: overlay::run_in_chroot, the chroot isolation level);
// spec's stdout/stderr are replaced by a pipe read on a thread that reports each line as
// step_output(step, line). Throws what Sandbox::run / run_in_chroot throw (a command that
// cannot start, timeout, cancellation); a non-zero exit is returned, not thrown.
RunOutcome run_with_output(overlay::RunSpec spec, Progress& progress, const StepRef& step, bool chroot = false);

}  // namespace cbuild::builder
