// Runs a program (the cbuild binary by default) and captures its exit code, stdout and stderr.
#pragma once

#include <string>
#include <vector>

namespace cbuild::test {

struct CommandResult {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out;
  std::string err;
};

// argv[0] is looked up in PATH unless it contains '/'. stdin gets `input` (empty: /dev/null).
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = {},
                          const std::vector<std::string>& extra_env = {});
// `env` with SOURCE_DATE_EPOCH=1700000000 added when CBUILD_TEST_IMAGE_LOG is set and neither
// `env` nor the test's environment sets it (see run_cbuild); `env` as it is otherwise.
std::vector<std::string> with_logged_epoch(std::vector<std::string> env);
// Runs the cbuild binary built alongside the tests (as CBUILD_TEST_AS_USER when it is set:
// as_test_user.h; with CBUILD_TEST_CAPS's capabilities when that is: test_caps.h).
CommandResult run_cbuild(const std::vector<std::string>& args, const std::string& input = {},
                         const std::vector<std::string>& extra_env = {});

}  // namespace cbuild::test
