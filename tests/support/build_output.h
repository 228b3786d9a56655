// What a build printed, read back: the plain progress (--progress=plain, the tests' default
// when stderr is not a terminal) and the image ID a build prints last on stdout.
#pragma once

#include <string>
#include <vector>

#include "tests/support/run_command.h"

namespace cbuild::test {

// Steps the progress marks CACHED.
int cached_steps(const std::string& err);
// Steps the progress marks DONE (FROM included).
int done_steps(const std::string& err);
// The "WARNING: …" lines, in order.
std::vector<std::string> warnings(const std::string& err);
// The last line of stdout (the image ID, with its newline).
std::string image_id(const CommandResult& r);

}  // namespace cbuild::test
