#include "tests/support/test_caps.h"

#include <cstdlib>
#include <string_view>

#include <doctest/doctest.h>

namespace cbuild::test {

const std::string kDockerDefaultCaps =
    "-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service,+net_raw,"
    "+sys_chroot,+mknod,+audit_write,+setfcap";

std::vector<std::string> with_test_caps(std::vector<std::string> argv) {
  const char* v = std::getenv("CBUILD_TEST_CAPS");
  if (!v || !*v) return argv;
  if (std::string_view(v) != "docker-default") FAIL("CBUILD_TEST_CAPS=" << v << ": expected docker-default");
  std::vector<std::string> a{"setpriv", "--inh-caps=" + kDockerDefaultCaps, "--bounding-set=" + kDockerDefaultCaps,
                             "--"};
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

}  // namespace cbuild::test
