#include <doctest/doctest.h>

#include "tests/support/run_command.h"

using cbuild::test::run_cbuild;

TEST_CASE("--version and --help succeed; an unknown flag is a usage error (exit 2)") {
  auto v = run_cbuild({"--version"});
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("cbuild version") != std::string::npos);
  auto h = run_cbuild({"--help"});
  CHECK(h.exit_code == 0);
  CHECK(h.out.find("--root") != std::string::npos);
  auto bad = run_cbuild({"version", "--no-such-flag"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.rfind("cbuild: error:", 0) == 0);
}
