// A COPY wildcard that matches nothing, compared with docker build: BuildKit copies nothing for
// it (no destination directory either, but a layer and its history entry), which popular
// Dockerfiles rely on (`COPY package.json yarn.lock* package-lock.json* ./`); a wildcard whose
// directory does not exist fails in both.
#include <doctest/doctest.h>

#include "tests/support/build_project.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

using namespace cbuild;

TEST_CASE("COPY of wildcards that match nothing copies nothing, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("a.json", "{}\n");
  p.file("sub/keep", "k\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY a.json nomatch* ./\nCOPY nomatch* /x/\nCOPY nomatch* nomatch2? /y\n"
                       "COPY sub/nomatch* /v/\n");
  test::check_same_as_docker(p, "wildcard-none:1");
}

TEST_CASE("COPY of a wildcard in a missing directory fails, as in docker, naming the source") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  test::BuildProject p(docker->base());
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY nodir/nomatch* /u/\n");
  TempDir work;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  CHECK(b.result.exit_code != 0);
  auto r = p.build({"-t", "wildcard-none:2"});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find("Dockerfile:2: COPY nodir/nomatch* /u/: source \"nodir/nomatch*\": directory \"nodir\" not found") !=
                    std::string::npos,
                r.err);
}
