// Device nodes, fifos and sockets through COPY, against docker build (20.10, BuildKit), from the
// build context and from a stage, on both of cbuild's COPY paths (streamed onto the base, and
// onto a snapshot a RUN made): devices become empty files, fifos are skipped — after what was
// at their destination is removed — and a 0/0 character device is never a whiteout
// (builder/steps/copy_rules.h). A RUN's mknod keeps its device.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "tests/support/build_project.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/layer_listing.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

void node(const fs::path& p, mode_t mode, dev_t dev) {
  REQUIRE_MESSAGE(::mknod(p.c_str(), mode, dev) == 0, "mknod " << p << ": " << std::strerror(errno));
}

}  // namespace

TEST_CASE("devices, fifos and sockets through COPY give docker's layers") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("dev/keep", "k\n");
  node(p.ctx / "dev/null", S_IFCHR | 0666, makedev(1, 3));
  node(p.ctx / "dev/zero0", S_IFCHR | 0600, makedev(0, 0));
  node(p.ctx / "dev/loop", S_IFBLK | 0660, makedev(7, 0));
  node(p.ctx / "dev/fifo", S_IFIFO | 0640, 0);
  node(p.ctx / "dev/sock", S_IFSOCK | 0640, 0);
  node(p.ctx / "null1", S_IFCHR | 0640, makedev(1, 3));
  p.file("Dockerfile", test::dockerfile_text(p, R"(FROM {BASE} AS s
RUN mkdir /n && mknod /n/null c 1 3 && mkfifo /n/fifo
FROM {BASE}
COPY dev /streamed/
COPY null1 /one
RUN mkdir /ondisk
COPY dev /ondisk/
COPY --from=s /n /fromstage/
COPY dev/fifo /x/y/onefifo
RUN echo old > /replaced
COPY dev/fifo /replaced
COPY --from=s /n/fifo /z/fifo2
RUN mknod /rundev c 1 3
)"));
  auto r = p.build({"-t", "devs:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto mine = test::image_layer_listings(p, "docker.io/library/devs:1", work.path() / "mine");
  // What docker gives, checked where a docker peer is missing too.
  REQUIRE(mine.size() == 11);
  CHECK_MESSAGE(mine[1].find("streamed/zero0 file 384 0:0 0\n") != std::string::npos, mine[1]);
  CHECK_MESSAGE(mine[1].find(".wh.") == std::string::npos, mine[1]);
  CHECK_MESSAGE(mine[1].find("fifo") == std::string::npos, mine[1]);
  CHECK_MESSAGE(mine[2] == "one file 416 0:0 0\n", mine[2]);
  CHECK_MESSAGE(mine[8].find(".wh.replaced file 384 0:0 0") != std::string::npos, mine[8]);
  CHECK_MESSAGE(mine[10].find("rundev char") != std::string::npos, mine[10]);

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  auto want = test::docker_layer_listings(work.path() / "docker");
  REQUIRE(want.size() == mine.size());
  for (std::size_t i = 1; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(want[i] == mine[i], "docker (-) vs cbuild (+):\n" << test::listing_diff(want[i], mine[i]));
  }
}
