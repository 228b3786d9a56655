// Root-only tests. A test that needs root calls REQUIRE_ROOT() first: without root it is
// skipped with a visible message on a developer's machine, and FAILS in CI (CI=true), so a
// broken CI setup can never pass by skipping.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <doctest/doctest.h>

namespace cbuild::test {
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && *ci && std::strcmp(ci, "false") != 0 && std::strcmp(ci, "0") != 0;
}
}  // namespace cbuild::test

#define REQUIRE_ROOT()                                                           \
  do {                                                                           \
    if (::geteuid() != 0) {                                                      \
      if (::cbuild::test::in_ci()) FAIL("this test needs root, and CI runs as root"); \
      MESSAGE("skipped: needs root");                                            \
      return;                                                                    \
    }                                                                            \
  } while (0)
