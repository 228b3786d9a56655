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
// Runs the cbuild binary built alongside the tests (as CBUILD_TEST_AS_USER when it is set:
// as_test_user.h; with CBUILD_TEST_CAPS's capabilities when that is: test_caps.h).
CommandResult run_cbuild(const std::vector<std::string>& args, const std::string& input = {},
                         const std::vector<std::string>& extra_env = {});

}  // namespace cbuild::test
