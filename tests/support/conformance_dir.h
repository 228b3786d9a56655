// Conformance data (BuildKit's parser and shell vectors, the OCI schema validator) does not
// ship with the project; a conformance test reads it from the directory named by the
// environment variable CBUILD_CONFORMANCE_DIR. A test starts with REQUIRE_CONFORMANCE_DIR(dir):
// unset, it is skipped with a visible message on a developer's machine (ctest lists it among
// the tests that did not run) and FAILS in CI (CI=true), so the suite can never pass without
// having run; set to a directory that does not exist, it always fails.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include <doctest/doctest.h>

#include "tests/support/root.h"

namespace cbuild::test {
inline constexpr const char* kConformanceDirVar = "CBUILD_CONFORMANCE_DIR";

// The value of CBUILD_CONFORMANCE_DIR, empty when unset or empty.
inline std::string conformance_dir_from_env() {
  const char* dir = std::getenv(kConformanceDirVar);
  return dir ? std::string(dir) : std::string();
}

inline bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace cbuild::test

// Declares `std::string var` holding the conformance directory, or returns from the test.
#define REQUIRE_CONFORMANCE_DIR(var)                                                            \
  std::string var = ::cbuild::test::conformance_dir_from_env();                                 \
  do {                                                                                          \
    if (var.empty()) {                                                                          \
      if (::cbuild::test::in_ci()) FAIL("CBUILD_CONFORMANCE_DIR is not set, and CI must run the conformance vectors"); \
      MESSAGE("skipped: conformance vectors not run (set CBUILD_CONFORMANCE_DIR to the conformance data directory)"); \
      return;                                                                                   \
    }                                                                                           \
    if (!::cbuild::test::is_directory(var))                                                     \
      FAIL("CBUILD_CONFORMANCE_DIR=" << var << " is not a directory");                          \
  } while (0)
