// Dockerfile semantics compared with docker build through the real binary: EXPOSE port specs
// (ranges expanded, protocols lower-cased, docker's refusals), FROM against stage names (exact
// match; COPY --from is case-insensitive), and heredocs with quoted delimiters.
#include <doctest/doctest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

std::string last_created_by(const json& config) {
  std::string out;
  for (const auto& h : config["history"]) out = h.value("created_by", "");
  return out;
}

}  // namespace

TEST_CASE("EXPOSE expands ranges and lower-cases protocols as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "EXPOSE 9000-9002/udp 8443/TCP 080 1.2.3.4:81:81/Sctp 8443/tcp\n");
  auto r = p.build({"-t", "expose:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/expose:1", work.path() / "mine/rootfs");
  json want = {{"9000/udp", json::object()}, {"9001/udp", json::object()}, {"9002/udp", json::object()},
               {"8443/tcp", json::object()}, {"80/tcp", json::object()},   {"81/sctp", json::object()}};
  CHECK(config["config"]["ExposedPorts"] == want);
  CHECK(last_created_by(config) == "EXPOSE map[80/tcp:{} 81/sctp:{} 8443/tcp:{} 9000/udp:{} 9001/udp:{} 9002/udp:{}]");

  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  CHECK(b.config["config"]["ExposedPorts"] == config["config"]["ExposedPorts"]);
  CHECK(last_created_by(b.config) == last_created_by(config));
}

TEST_CASE("EXPOSE refuses what docker refuses, naming the port spec") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  for (std::string spec : {"9002-9000", "abc", "80/xyz", "65536", "80-", "/udp", "1.2.3:80:80", "80:x"}) {
    CAPTURE(spec);
    test::BuildProject p(docker->base());
    p.file("Dockerfile", "FROM " + p.base + "\nEXPOSE 80 " + spec + "\n");
    TempDir work;
    auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    CHECK_MESSAGE(b.result.exit_code != 0, "docker accepted it");
    auto r = p.build({"-t", "expose:bad"});
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find("Dockerfile:2") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("EXPOSE: ") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find(spec) != std::string::npos, r.err);
  }
}

TEST_CASE("FROM matches stage names exactly (FROM BUILDER is refused) while COPY --from ignores case") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  REQUIRE(docker);
  SUBCASE("FROM BUILDER is an invalid image reference, as in docker") {
    test::BuildProject p(docker->base());
    p.file("Dockerfile", "FROM " + p.base + " AS builder\nRUN echo hi > /x\nFROM BUILDER\n");
    TempDir work;
    auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    CHECK(b.result.exit_code != 0);
    CHECK_MESSAGE(b.result.err.find("must be lowercase") != std::string::npos, b.result.err);
    auto r = p.build({"-t", "stage:bad"});
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find("Dockerfile:3") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("failed to parse stage name \"BUILDER\"") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("must be lowercase") != std::string::npos, r.err);
  }
  SUBCASE("COPY --from=BUILDER and FROM of a stage declared in upper case work, as in docker") {
    test::BuildProject p(docker->base());
    p.file("Dockerfile", "FROM " + p.base + " AS builder\nRUN echo hi > /x\n"
           "FROM " + p.base + " AS Second\nCOPY --from=BUILDER /x /y\n"
           "FROM second\nRUN cat /y > /z\n");
    auto r = p.build({"-t", "stage:ok"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    TempDir work;
    auto [config, mine] = p.image("docker.io/library/stage:ok", work.path() / "mine/rootfs");
    CHECK(read_file(mine / "z") == "hi\n");
    auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
    std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
    CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  }
}

// The docker peer (dockerd 20.10, its built-in frontend) predates heredocs, so this one states
// BuildKit's documented semantics instead: a quoted delimiter only turns expansion off.
TEST_CASE("heredocs with quoted delimiters, <<- and several in one instruction") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "ARG V=val\n"
         "COPY <<\"EOF\" /etc/a.conf\na $V\nEOF\n"
         "COPY <<'EOF' /etc/b.conf\nb $V\nEOF\n"
         "COPY <<EOF /etc/c.conf\nc $V ${V}x\nEOF\n"
         "COPY <<-EOF /etc/d.conf\n\t\td $V\n\tEOF\n"
         "COPY <<A <<\"B\" /etc/m/\na $V\nA\nb $V\nB\n"
         "RUN <<\"EOF\"\necho \"r1 $V\" > /r1\nEOF\n"
         "RUN <<-'EOF'\n\techo r2 > /r2\n\tEOF\n"
         "RUN cat <<'X' > /r3 && cat <<Y > /r4\n$V\nX\n$V\nY\n");
  auto r = p.build({"-t", "heredoc:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/heredoc:1", work.path() / "mine/rootfs");
  CHECK(read_file(mine / "etc/a.conf") == "a $V\n");
  CHECK(read_file(mine / "etc/b.conf") == "b $V\n");
  CHECK(read_file(mine / "etc/c.conf") == "c val valx\n");
  CHECK(read_file(mine / "etc/d.conf") == "d val\n");
  CHECK(read_file(mine / "etc/m/A") == "a val\n");
  CHECK(read_file(mine / "etc/m/B") == "b $V\n");
  CHECK(read_file(mine / "r1") == "r1 val\n");
  CHECK(read_file(mine / "r2") == "r2\n");
  CHECK(read_file(mine / "r3") == "$V\n");
  CHECK(read_file(mine / "r4") == "val\n");
}
