// --isolation=chroot against the default level and docker (overlay2) for files with several
// hard links in a lower layer: a RUN writing one name changes only that name, the layer holds
// it alone, and the other names keep their content (overlay/tree_diff.h).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "oci/base/fs.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/layer_listing.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

const std::vector<std::string> kEpoch = {"SOURCE_DATE_EPOCH=1700000000"};

// The last line of stdout: the image ID.
std::string image_id(const test::CommandResult& r) {
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
}

// The first RUN links the names in a layer of its own; the later steps write through one name
// each. The first layers (the base, and the first RUN, where docker adds its mount points) are
// not compared entry by entry, only in the flattened tree.
const char* kDockerfile = R"(FROM {BASE}
RUN mkdir /d && echo data > /d/a && ln /d/a /d/b && ln /d/a /d/c && ln -s a /d/s && ln /d/s /d/s2
RUN echo x >> /d/a && cat /d/b > /seen-b
RUN chmod 600 /d/c
RUN ln /d/b /d/e
)";
constexpr std::size_t kFirstCompared = 2;

}  // namespace

TEST_CASE("isolation chroot: writing one name of a linked lower file gives overlay's and docker's layers") {
  REQUIRE_ROOT();
  TempDir work;
  test::BuildProject def(test::base_for_test()), chr(test::base_for_test());
  for (auto* p : {&def, &chr}) p->file("Dockerfile", test::dockerfile_text(*p, kDockerfile));
  auto rd = def.build({"-t", "img:1"}, kEpoch);
  REQUIRE_MESSAGE(rd.exit_code == 0, rd.err);
  auto rc = chr.build({"--isolation=chroot", "-t", "img:1"}, kEpoch);
  REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
  auto mine_def = test::image_layer_listings(def, "docker.io/library/img:1", work.path() / "def");
  auto mine_chr = test::image_layer_listings(chr, "docker.io/library/img:1", work.path() / "chr");
  REQUIRE(mine_def.size() == mine_chr.size());
  for (std::size_t i = 0; i < mine_def.size(); ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(mine_def[i] == mine_chr[i], "default (-) vs chroot (+):\n" << test::listing_diff(mine_def[i], mine_chr[i]));
  }
  CHECK(image_id(rd) == image_id(rc));
  // What overlay gives, whoever else is there to compare with: /d/b kept the content it had.
  CHECK(read_file(work.path() / "chr/rootfs/seen-b") == "data\n");
  CHECK(read_file(work.path() / "chr/rootfs/d/b") == "data\n");

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  auto b = docker->build(def.ctx, def.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  auto want = test::docker_layer_listings(work.path() / "docker");
  REQUIRE(want.size() == mine_chr.size());
  for (std::size_t i = kFirstCompared; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(want[i] == mine_chr[i], "docker (-) vs chroot (+):\n" << test::listing_diff(want[i], mine_chr[i]));
  }
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(work.path() / "chr/rootfs"));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs chroot (+):\n" << diff);
}
