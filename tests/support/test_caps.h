// CBUILD_TEST_CAPS=docker-default (scripts/rootless-suite.sh's chroot pass): every cbuild
// binary a test starts (run_cbuild, BackgroundCommand::cbuild) runs under setpriv with docker's
// default capability set as its inheritable and bounding sets — root without CAP_SYS_ADMIN,
// as a container's root with docker's defaults — while the test itself keeps all of root's
// capabilities and checks what it always checks. setpriv does not block unshare as docker's
// seccomp profile does, so `auto` would still pick the userns level there: the pass asks for
// the chroot level with CBUILD_ISOLATION=chroot. Any other value fails the test (never a
// silent run with all capabilities).
#pragma once

#include <string>
#include <vector>

namespace cbuild::test {

// Docker's default capabilities (moby's oci/caps/defaults.go) in setpriv's syntax, with
// every other one dropped.
extern const std::string kDockerDefaultCaps;

// `argv` under setpriv with the capabilities CBUILD_TEST_CAPS names; unchanged when unset.
std::vector<std::string> with_test_caps(std::vector<std::string> argv);

}  // namespace cbuild::test
