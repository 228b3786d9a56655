// RUN heredocs that start with "#!" run as scripts, as BuildKit runs them (dockerfile2llb's
// dispatchRun): the body becomes /dev/pipes/<name>, mode 0755, in a read-only mount of its own,
// and the shell is handed that path, so the interpreter on the first line runs it. docker 20.10's
// built-in frontend cannot parse heredocs, so these check BuildKit's rules directly.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

TEST_CASE("a RUN heredoc starting with #! runs with its interpreter, any USER, and leaves no trace") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  // awk reads the script: as shell text, its BEGIN block would be a syntax error.
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "RUN <<EOF\n#!/usr/bin/awk -f\nBEGIN { print \"awk ran\" > \"/awk.out\" }\nEOF\n"
         "RUN mkdir -m 777 /w\n"
         "USER nobody\n"
         "RUN <<-'SCRIPT'\n#!/bin/sh -e\n\techo \"as $(id -u) from $0\" > /w/sh.out\n\tSCRIPT\n"
         // Leading tabs before "#!" under <<-: BuildKit tests the raw body, so this is shell text.
         "RUN <<-EOF\n\t#!/usr/bin/awk -f\n\techo plain > /w/plain.out\n\tEOF\n");
  auto r = p.build({"-t", "shebang:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/shebang:1", work.path() / "mine/rootfs");
  CHECK(read_file(mine / "awk.out") == "awk ran\n");
  CHECK(read_file(mine / "w/sh.out") == "as 65534 from /dev/pipes/SCRIPT\n");
  CHECK(read_file(mine / "w/plain.out") == "plain\n");
  CHECK_FALSE(fs::exists(fs::symlink_status(mine / "dev/pipes")));
  auto created = test::history_created_by(config);
  REQUIRE(created.size() >= 5);
  CHECK(created[created.size() - 5] == "RUN /bin/sh -c /dev/pipes/EOF # buildkit");
}

TEST_CASE("a #! heredoc whose name cannot be a file name is refused, naming the line") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM " + p.base + "\nRUN <<a/b\n#!/bin/sh\necho hi\na/b\n");
  auto r = p.build({"-t", "shebang:bad"});
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.err.find("Dockerfile:2") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("cannot name a script file") != std::string::npos, r.err);
}
