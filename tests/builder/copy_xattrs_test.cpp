// Extended attributes through COPY, ADD and RUN, against docker build (20.10, BuildKit,
// overlay2): its layers carry security.capability and no other xattr (overlay/layer_xattrs.h);
// build-context files arrive without xattrs, so COPY from the context drops even a capability;
// COPY --from a stage keeps a file's capability, with --chown too; an ADDed archive's
// capability lands, its user.* xattrs do not; a RUN that copies a capable file up keeps it, a
// chown there clears it (the kernel). And, as docker's, the cache of a context COPY ignores
// an xattr-only change of its source.
#include <doctest/doctest.h>

#include <sys/xattr.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "oci/base/fs.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/layer_listing.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

// A version-2 file capability: cap_net_raw (bit 13) permitted and effective, as
// `setcap cap_net_raw+ep` writes it.
const std::string kCap("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);

void set_xattr(const fs::path& p, const std::string& key, const std::string& value) {
  REQUIRE_MESSAGE(::lsetxattr(p.c_str(), key.c_str(), value.data(), value.size(), 0) == 0,
                  "setxattr " << key << " on " << p << ": " << std::strerror(errno));
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// A context whose files carry xattrs, and caps.tar, an archive of such files (the tar's
// SCHILY.xattr records, as GNU tar --xattrs writes them).
void xattr_context(const test::BuildProject& p) {
  p.file("capf", "cap\n", 0755);
  set_xattr(p.ctx / "capf", "security.capability", kCap);
  set_xattr(p.ctx / "capf", "user.foo", "bar");
  p.file("uf", "u\n");
  set_xattr(p.ctx / "uf", "user.foo", "bar");
  p.file("d/in", "inner\n");
  set_xattr(p.ctx / "d", "user.dirx", "dv");
  set_xattr(p.ctx / "d/in", "user.inner", "iv");
  TempDir src(p.tmp);
  write(src.path() / "capbase", "c\n");
  write(src.path() / "ubase", "u\n");
  set_xattr(src.path() / "capbase", "security.capability", kCap);
  set_xattr(src.path() / "capbase", "user.foo", "bar");
  set_xattr(src.path() / "ubase", "user.foo", "bar");
  auto t = test::run_command({"tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", src.path().string(),
                              "-cf", (p.ctx / "caps.tar").string(), "capbase", "ubase"});
  REQUIRE_MESSAGE(t.exit_code == 0, t.err);
}

const char* kDockerfile = R"(FROM {BASE} AS s1
ADD caps.tar /src/
FROM {BASE}
COPY capf uf /ctx/
COPY d /d
COPY --chown=1:2 capf /ctx-chown
COPY --from=s1 /src/capbase /src/ubase /from/
COPY --chown=1:2 --from=s1 /src/capbase /from-chown
ADD caps.tar /add/
RUN touch /add/ubase /add/capbase
RUN chown 1:2 /add/capbase
)";

}  // namespace

TEST_CASE("xattrs: COPY, COPY --from, ADD of an archive and RUN give docker's layers, xattrs included") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  xattr_context(p);
  p.file("Dockerfile", test::dockerfile_text(p, kDockerfile));
  auto r = p.build({"-t", "x:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto mine = test::image_layer_listings(p, "docker.io/library/x:1", work.path() / "mine");
  // What docker gives, written out where a docker peer is missing: the layers after the base.
  REQUIRE(mine.size() == 9);
  const std::string cap = "security.capability=0100000200200000000000000000000000000000";
  CHECK_MESSAGE(mine[1].find("user.") == std::string::npos, mine[1]);
  CHECK_MESSAGE(mine[1].find("security.") == std::string::npos, mine[1]);
  CHECK_MESSAGE(mine[2].find("user.") == std::string::npos, mine[2]);
  CHECK_MESSAGE(mine[3].find("security.") == std::string::npos, mine[3]);
  CHECK_MESSAGE(mine[4].find("from/capbase file 420 0:0 2 " + cap) != std::string::npos, mine[4]);
  CHECK_MESSAGE(mine[4].find("user.") == std::string::npos, mine[4]);
  CHECK_MESSAGE(mine[5].find("from-chown file 420 1:2 2 " + cap) != std::string::npos, mine[5]);
  CHECK_MESSAGE(mine[6].find("add/capbase file 420 0:0 2 " + cap) != std::string::npos, mine[6]);
  CHECK_MESSAGE(mine[6].find("user.") == std::string::npos, mine[6]);
  CHECK_MESSAGE(mine[7].find("add/capbase file 420 0:0 2 " + cap) != std::string::npos, mine[7]);
  CHECK_MESSAGE(mine[7].find("user.") == std::string::npos, mine[7]);
  CHECK_MESSAGE(mine[8].find("security.") == std::string::npos, mine[8]);

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

TEST_CASE("xattrs: an xattr-only change of a context file keeps COPY's cache hit, as docker's") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("uf", "u\n");
  set_xattr(p.ctx / "uf", "user.foo", "bar");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY uf /uf\n");
  auto first = p.build({"-t", "c:1"});
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  set_xattr(p.ctx / "uf", "user.foo", "baz");
  set_xattr(p.ctx / "uf", "security.capability", kCap);
  auto second = p.build({"-t", "c:2"});
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  CHECK_MESSAGE(second.err.find("CACHED") != std::string::npos, second.err);
  CHECK(p.tag("docker.io/library/c:1")->digest == p.tag("docker.io/library/c:2")->digest);

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  TempDir work;
  set_xattr(p.ctx / "uf", "user.foo", "bar");
  auto d1 = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "d1");
  REQUIRE_MESSAGE(d1.result.exit_code == 0, d1.result.err);
  set_xattr(p.ctx / "uf", "user.foo", "qux");
  auto d2 = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "d2");
  REQUIRE_MESSAGE(d2.result.exit_code == 0, d2.result.err);
  CHECK_MESSAGE(d2.result.err.find("CACHED") != std::string::npos, d2.result.err);
}
