// Renderers for builder::Progress. Plain: one line per event in BuildKit's `--progress=plain`
// shape ("#3 [2/4] RUN make", "#3 0.412 output line", "#3 DONE 1.2s", "#3 CACHED"), for CI
// and pipes. TTY: the same events, with live step timings redrawn in place. Both write to
// stderr so stdout stays for the image ID; both are thread-safe.
#pragma once

#include <cstdio>
#include <memory>

#include "builder/plan/build_options.h"
#include "builder/plan/progress.h"

namespace cbuild::cli {

// Auto chooses TTY when `out` is a terminal and TERM is not "dumb", else Plain.
std::unique_ptr<builder::Progress> make_progress(builder::ProgressMode mode, std::FILE* out = stderr);

std::unique_ptr<builder::Progress> make_plain_progress(std::FILE* out);
std::unique_ptr<builder::Progress> make_tty_progress(std::FILE* out);

}  // namespace cbuild::cli
