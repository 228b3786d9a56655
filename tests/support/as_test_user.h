// CBUILD_TEST_AS_USER=NAME (scripts/rootless-suite.sh): every cbuild binary a test starts
// (run_cbuild, BackgroundCommand::cbuild) runs as the unprivileged user NAME instead of root —
// rootless mode — while the test itself stays root and checks the same things. The user must
// exist (with a subordinate id range for images with several owners), and the test process's
// TMPDIR must let it create directories (mode 1777, as /tmp), for cbuild's own scratch.
//
// The test's files are made by root; before each run, as_test_user() gives the user what root
// owns in the test's own temporary directories: for every absolute path among the arguments
// and the extra environment ("--root /tmp/cbuild-x/store", "TMPDIR=…", "dest=…") that lies
// below the test process's temp parent (default_temp_parent(): $TMPDIR, else /tmp), the
// directory directly below that parent, recursively — the context too: a user's context is
// the user's, and a RUN --mount=type=bind,rw writes through files its root may change. Only
// entries whose owner is uid 0 change (to the user; group 0 to the user's group), so a
// rootless store's subordinate owners and a context's deliberate owners stay; setuid/setgid
// bits that chown clears are put back. Inside cbuild's user namespace those entries are then
// 0:0. chown sets ctime to now: a test that needs its context unchanged for a while (the
// content-hash cache remembers only files 2 s old) lends it first with lend_to_test_user().
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cbuild::test {

struct TestUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

// The user CBUILD_TEST_AS_USER names, or nullopt when it is unset. A name that does not
// exist fails the test (never a silent fall back to root).
const std::optional<TestUser>& test_user();

// Lends `dir` now, as a cbuild run would (nothing when the switch is off).
void lend_to_test_user(const std::filesystem::path& dir);

// `argv` as the test user would run it (setpriv with the user's ids and groups, HOME and USER
// the user's unless `extra_env` sets them), after lending the directories above; `argv`
// unchanged when the switch is off.
std::vector<std::string> as_test_user(std::vector<std::string> argv, const std::vector<std::string>& extra_env);

}  // namespace cbuild::test
