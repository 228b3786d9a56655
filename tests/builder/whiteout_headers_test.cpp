// The tar headers of whiteout and opaque markers in a RUN layer, at the default level and
// --isolation=chroot, against docker build (20.10, BuildKit, overlay2), whose rule
// overlay/whiteout.h states: ".wh.NAME" a regular file 0600 with the device's owner and the
// time of the deletion; ".wh..wh..opq" a regular file with the directory's owner and
// permission bits (no setuid/setgid/sticky) and mtime 0.
#include <doctest/doctest.h>

#include <time.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/layer_listing.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

// /gone is deleted; /o and /g are removed and made again (opaque), /o setgid, /g 12:34 0750.
const char* kDockerfile = R"(FROM {BASE}
RUN mkdir -p /o/sub /g && echo a > /o/f && echo b > /o/sub/x && echo c > /gone && echo d > /g/y
RUN rm /gone && rm -rf /o /g && mkdir /o /g && chmod 2755 /o && echo n > /o/n && echo z > /g/z && chown -R 12:34 /g && chmod 0750 /g
)";

// Docker's headers as the listing prints them (modes in decimal: 0600, 0750, 0755).
const std::string kMarkers =
    ".wh.gone file 384 0:0 0\n"
    "g/.wh..wh..opq file 488 12:34 0\n"
    "o/.wh..wh..opq file 493 0:0 0\n";

// The marker lines of a listing, sorted: docker writes a directory's entries in readdir order,
// cbuild by name (overlay/whiteout.h).
std::string marker_lines(const std::string& listing) {
  std::vector<std::string> lines;
  std::istringstream in(listing);
  for (std::string l; std::getline(in, l);) {
    std::string path = l.substr(0, l.find(' '));
    std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
    if (base.rfind(".wh.", 0) == 0) lines.push_back(l);
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The mtime of each marker of a layer file.
std::map<std::string, std::int64_t> marker_mtimes(const fs::path& layer) {
  oci::TarReader r(oci::FdSource::open(layer), layer.string());
  std::map<std::string, std::int64_t> out;
  while (auto e = r.next())
    if (e->path.find(".wh.") != std::string::npos) out[e->path] = e->mtime_sec;
  return out;
}

// The whiteout carries the time of the deletion (during the build), the opaque markers 0.
void check_mtimes(const std::map<std::string, std::int64_t>& m, std::int64_t started, const char* who) {
  CAPTURE(who);
  REQUIRE(m.size() == 3);
  CHECK(m.at(".wh.gone") >= started - 2);
  CHECK(m.at(".wh.gone") <= ::time(nullptr) + 2);
  CHECK(m.at("g/.wh..wh..opq") == 0);
  CHECK(m.at("o/.wh..wh..opq") == 0);
}

}  // namespace

TEST_CASE("whiteout headers: RUN markers are docker's at the default level") {
  REQUIRE_ROOT();
  TempDir work;
  test::BuildProject def(test::base_for_test());
  def.file("Dockerfile", test::dockerfile_text(def, kDockerfile));
  std::int64_t started = ::time(nullptr);
  auto rd = def.build({"-t", "img:1"});
  REQUIRE_MESSAGE(rd.exit_code == 0, rd.err);
  auto mine_def = test::image_layer_listings(def, "docker.io/library/img:1", work.path() / "def");
  REQUIRE(mine_def.size() >= 3);
  std::string last = "layer" + std::to_string(mine_def.size() - 1);
  CHECK(marker_lines(mine_def.back()) == kMarkers);
  check_mtimes(marker_mtimes(work.path() / "def" / last), started, "default");

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  // --no-cache: a cached layer would carry the time of an earlier build's deletion.
  std::int64_t docker_started = ::time(nullptr);
  auto b = docker->build(def.ctx, def.ctx / "Dockerfile", work.path() / "docker", {"--no-cache"});
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  auto want = test::docker_layer_listings(work.path() / "docker");
  REQUIRE(want.size() == mine_def.size());
  CHECK(marker_lines(want.back()) == kMarkers);
  auto manifest = nlohmann::json::parse(read_file(work.path() / "docker/docker-save/manifest.json"));
  check_mtimes(marker_mtimes(work.path() / "docker/docker-save" / manifest[0]["Layers"].back().get<std::string>()),
               docker_started, "docker");
}

// Its own case: a non-root cbuild refuses the chroot level, and the rootless suite leaves
// "isolation chroot: *" cases out of its rootless pass.
TEST_CASE("isolation chroot: whiteout headers of RUN markers are docker's too") {
  REQUIRE_ROOT();
  TempDir work;
  test::BuildProject chr(test::base_for_test());
  chr.file("Dockerfile", test::dockerfile_text(chr, kDockerfile));
  std::int64_t started = ::time(nullptr);
  auto rc = chr.build({"--isolation=chroot", "-t", "img:1"});
  REQUIRE_MESSAGE(rc.exit_code == 0, rc.err);
  auto mine_chr = test::image_layer_listings(chr, "docker.io/library/img:1", work.path() / "chr");
  REQUIRE(mine_chr.size() >= 3);
  std::string last = "layer" + std::to_string(mine_chr.size() - 1);
  CHECK(marker_lines(mine_chr.back()) == kMarkers);
  check_mtimes(marker_mtimes(work.path() / "chr" / last), started, "chroot");
}
