// Bytes a Dockerfile may hold that are not plain text: each invalid UTF-8 byte becomes
// U+FFFD, in what RUN runs as in the image config, as docker does (compared with docker
// build); a NUL byte is an error naming the file and line.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "builder/dockerfile/dockerfile_error.h"
#include "builder/dockerfile/parser.h"
#include "builder/plan/planner.h"
#include "builder/dockerfile/valid_utf8.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

TEST_CASE("valid_utf8: each invalid byte becomes U+FFFD, as Go's json.Marshal does") {
  CHECK(builder::valid_utf8("a\xff" "b") == "a\xEF\xBF\xBD" "b");
  // A truncated sequence is one U+FFFD per byte (Go decodes it byte by byte).
  CHECK(builder::valid_utf8("\xE2\x82x") == "\xEF\xBF\xBD\xEF\xBF\xBDx");
  CHECK(builder::valid_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(builder::valid_utf8("h\xC3\xA9 \xEF\xBF\xBD") == "h\xC3\xA9 \xEF\xBF\xBD");  // valid text is kept
  json doc = {{"k\xff", {"v\xfe", 1, "ok"}}, {"n", nullptr}};
  json fixed = builder::with_valid_utf8(doc);
  CHECK_THROWS(doc.dump());
  CHECK(fixed.dump() == "{\"k\xEF\xBF\xBD\":[\"v\xEF\xBF\xBD\",1,\"ok\"],\"n\":null}");
}

TEST_CASE("planner: invalid UTF-8 in the Dockerfile and the build-args is read as U+FFFD") {
  builder::PlanOptions o;
  o.build_platform = "linux/amd64";
  o.build_args = {{"B", "x\xfe"}};
  builder::Plan plan = builder::plan_dockerfile("FROM scratch\nARG B\nRUN echo \xff\n", "Dockerfile", o);
  const builder::Step& run = plan.stages.at(0).steps.at(1);
  CHECK(run.expanded_text == "RUN echo \xEF\xBF\xBD");
  REQUIRE(run.args.size() == 1);
  CHECK(run.args.get()[0].second == "x\xEF\xBF\xBD");
}

TEST_CASE("parser: a NUL byte is an error naming the file and line") {
  std::string text = "FROM scratch\nRUN echo a\n\nLABEL x=\"a";
  text += '\0';
  text += "b\"\n";
  try {
    (void)builder::dockerfile::parse(text, "dir/Dockerfile");
    FAIL("no error");
  } catch (const builder::dockerfile::DockerfileError& e) {
    CHECK(std::string(e.what()) == "dir/Dockerfile:4: the line contains a NUL byte (not allowed in a Dockerfile)");
  }
  TempDir dir;
  write_file_atomic(dir.path() / "Dockerfile", text);
  auto r = test::run_cbuild({"check", (dir.path() / "Dockerfile").string()});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find("Dockerfile:4: the line contains a NUL byte") != std::string::npos, r.err);
}

TEST_CASE("build: invalid UTF-8 becomes U+FFFD in what RUN runs and in the config, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "ARG A=\xfe" "a\n"
         "RUN echo \xff > /f && echo \"$A\" > /g\n"
         "ENV E=\xe2\x82 F=ok\n"
         "LABEL l\xff=\"v\xff\"\n"
         "WORKDIR /d\xff\n"
         "CMD [\"echo\", \"\xff\"]\n");
  auto r = p.build({"-t", "bytes:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/bytes:1", work.path() / "mine/rootfs");
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(test::read_text(mine / "f") == fffd + "\n");
  CHECK(test::read_text(mine / "g") == fffd + "a\n");
  auto hm = test::history_created_by(config);
  REQUIRE(hm.size() >= 2);
  CHECK(std::find(hm.begin(), hm.end(), "RUN |1 A=" + fffd + "a /bin/sh -c echo " + fffd +
                                            " > /f && echo \"$A\" > /g # buildkit") != hm.end());
  CHECK(config["config"]["Labels"]["l" + fffd] == "v" + fffd);
  CHECK(config["config"]["WorkingDir"] == "/d" + fffd);
  // A warm rebuild (every step from the cache) gives the same image.
  auto again = p.build({"-t", "bytes:2"});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  auto [config2, mine2] = p.image("docker.io/library/bytes:2", work.path() / "mine2/rootfs");
  CHECK(config2 == config);

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  auto hd = test::history_created_by(b.config);
  CHECK_MESSAGE(hd == hm, "docker: " << json(hd).dump(1) << "\ncbuild: " << json(hm).dump(1));
  for (const char* k : {"Env", "Cmd", "WorkingDir", "Labels"})
    CHECK_MESSAGE(b.config["config"].value(k, json()) == config["config"].value(k, json()), k);
}
