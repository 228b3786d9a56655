// COPY/ADD onto symlinks of the image and hardlinks of the context, through the real binary
// and compared with docker build, layer by layer (entry type, mode, owner, link target):
//  - a destination that is (or runs through) a symlink of a lower layer is written where the
//    link leads, inside the rootfs (a link that climbs or is absolute stays inside), and the
//    link stays: `COPY f /etc/link.conf` replaces the link's target, not the link;
//  - a directory copied onto an existing non-directory fails, as docker does;
//  - context files hardlinked to each other stay hardlinked (a tar link entry) when one source
//    copies them; separate sources (and separate matches of a wildcard) copy separate files.
// Which path writes the layer: a COPY (and an ADD without a local archive) is streamed from an
// in-memory tree over a read-only view of the parent (layer_tree.h); an ADD that extracts a
// local archive writes all of its sources into a mounted overlay (CopyStep::write(rootfs),
// then the differ). The ADD cases below take that second path.
#include <doctest/doctest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

// One line per entry of a layer file: path, type, mode, owner, size and link target (a
// hardlink's too). mtimes are left out: builders legitimately differ.
std::string layer_listing(const fs::path& layer) {
  oci::TarReader r(oci::FdSource::open(layer), layer.string());
  std::string out;
  while (auto e = r.next()) {
    static const char* kTypes[] = {"file", "dir", "symlink", "hardlink", "char", "block", "fifo"};
    out += e->path + " " + kTypes[static_cast<int>(e->type)] + " " + std::to_string(e->mode) + " " +
           std::to_string(e->uid) + ":" + std::to_string(e->gid) + " " + std::to_string(e->size) +
           (e->link_target.empty() ? "" : " -> " + e->link_target) + "\n";
  }
  return out;
}

// The layers of cbuild's image `name` (written by BuildProject::image beside `rootfs`).
std::vector<std::string> my_layers(const test::BuildProject& p, const std::string& name, const fs::path& rootfs,
                                   json& config) {
  auto [c, mine] = p.image(name, rootfs);
  config = c;
  std::vector<std::string> out;
  for (std::size_t i = 0; fs::exists(rootfs.parent_path() / ("layer" + std::to_string(i))); ++i)
    out.push_back(layer_listing(rootfs.parent_path() / ("layer" + std::to_string(i))));
  return out;
}

// The layers of the image docker->build() saved under `work`.
std::vector<std::string> docker_layers(const fs::path& work) {
  fs::path saved = work / "docker-save";
  auto manifest = json::parse(read_file(saved / "manifest.json"));
  std::vector<std::string> out;
  for (const auto& l : manifest[0]["Layers"]) out.push_back(layer_listing(saved / l.get<std::string>()));
  return out;
}

// Builds the project with cbuild and docker and CHECKs that every layer from `first` on (the
// ones the COPY/ADD steps made) and the flattened trees are the same. Returns cbuild's layers.
std::vector<std::string> same_as_docker(test::BuildProject& p, const std::string& tag, std::size_t first) {
  auto r = p.build({"-t", tag});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  json config;
  fs::path mine = work.path() / "mine/rootfs";
  std::vector<std::string> got = my_layers(p, "docker.io/library/" + tag, mine, config);
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return got;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::vector<std::string> want = docker_layers(work.path() / "docker");
  REQUIRE(got.size() == want.size());
  auto history = test::history_created_by(config);
  for (std::size_t i = first; i < want.size(); ++i) {
    CAPTURE(i);
    INFO("step: " << (i < history.size() ? history[i] : std::string("?")));
    CHECK_MESSAGE(got[i] == want[i], "docker (-) vs cbuild (+):\n" << test::listing_diff(want[i], got[i]));
  }
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  return got;
}

// The links the copies below go through, made by a RUN so they are in a lower layer.
std::string link_base(const std::string& outside) {
  return "RUN mkdir -p /usr/lib2 && ln -s usr/lib2 /lib2"
         " && mkdir -p /data/real && ln -s /data/real /data/current && ln -s /data/real /data/cur2"
         " && echo old > /etc/target.conf && ln -s /etc/target.conf /etc/link.conf"
         " && ln -s /etc/" + outside + ".conf /etc/dangle.conf"
         " && ln -s /../../" + outside + " /escape && ln -s ../../../" + outside + "-rel /data/esc"
         " && ln -s /" + outside + "-dl /dl\n";
}

void link_context(test::BuildProject& p) {
  p.file("f", "new\n");
  p.file("d/dfile", "dd\n");
  p.file("d/sub/s", "ss\n");
}

}  // namespace

TEST_CASE("COPY onto symlinks of a lower layer writes where they lead, inside the rootfs, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  // A name no host path has: if a write escaped the rootfs it would land in the host's /.
  std::string outside = "cbuild-copylink-out-" + std::to_string(::getpid());
  link_context(p);
  p.file("Dockerfile", "FROM " + p.base + "\n" + link_base(outside) +
         "COPY f /lib2/\n"
         "COPY f /data/current/x\n"
         "COPY d /data/current/\n"
         "COPY d /data/cur2\n"
         "COPY f /etc/link.conf\n"
         "COPY f /etc/dangle.conf\n"
         "COPY f /escape/\n"
         "COPY d /data/esc/\n"
         "COPY --chown=5:6 f /dl/new/deep/\n");
  auto layers = same_as_docker(p, "copylinks:1", 2);
  REQUIRE(layers.size() == 11);
  // Independently of docker: the links stay links and the files are where they lead.
  CHECK(layers[2].find("usr/lib2/f file") != std::string::npos);
  CHECK(layers[2].find("lib2 symlink") == std::string::npos);
  CHECK(layers[6].find("etc/target.conf file") != std::string::npos);
  CHECK(layers[7].find("etc/" + outside + ".conf file") != std::string::npos);
  CHECK(layers[8].find(outside + "/f file") != std::string::npos);
  CHECK_FALSE(fs::exists(fs::path("/") / outside));
  CHECK_FALSE(fs::exists(fs::path("/") / (outside + "-rel")));
  CHECK_FALSE(fs::exists(fs::path("/") / (outside + "-dl")));
}

TEST_CASE("ADD of an archive with other sources onto symlinks (the mounted path) writes where they lead, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  std::string outside = "cbuild-copylink-add-" + std::to_string(::getpid());
  link_context(p);
  p.file("arch/in-tar", "t\n");
  auto t = test::run_command({"tar", "-cf", (p.ctx / "a.tar").string(), "-C", (p.ctx / "arch").string(), "in-tar"});
  REQUIRE_MESSAGE(t.exit_code == 0, t.err);
  fs::remove_all(p.ctx / "arch");
  p.file("Dockerfile", "FROM " + p.base + "\n" + link_base(outside) +
         "ADD a.tar f /lib2/\n"
         "ADD a.tar f /data/current/\n"
         "ADD a.tar d /data/cur2/\n"
         "ADD a.tar d /escape/\n"
         "ADD a.tar f /dl/new/\n");
  auto layers = same_as_docker(p, "copylinks:2", 2);
  REQUIRE(layers.size() == 7);
  CHECK(layers[3].find("data/real/f file") != std::string::npos);
  CHECK(layers[3].find("data/current ") == std::string::npos);
  CHECK_FALSE(fs::exists(fs::path("/") / outside));
  CHECK_FALSE(fs::exists(fs::path("/") / (outside + "-dl")));
}

TEST_CASE("a directory copied onto a symlink to a non-directory, or below onto a link to a directory, fails as in docker") {
  REQUIRE_ROOT();
  struct Case {
    std::string run, copy;
  };
  for (const Case& c : {Case{"mkdir -p /n/real && ln -s /n/real /n/sub", "COPY d /n/"},
                        Case{"echo t > /etc/tgt && ln -s /etc/tgt /etc/lnk", "COPY d /etc/lnk"},
                        Case{"echo t > /etc/plain", "COPY d /etc/plain"}}) {
    CAPTURE(c.copy);
    test::BuildProject p(test::base_for_test());
    link_context(p);
    p.file("Dockerfile", "FROM " + p.base + "\nRUN " + c.run + "\n" + c.copy + "\n");
    auto r = p.build({"-t", "copylinks:bad"});
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find("non-directory") != std::string::npos, r.err);
    test::DockerPeer* docker = test::DockerPeer::get();
    if (!docker) continue;
    TempDir work;
    auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
    CHECK_MESSAGE(b.result.exit_code != 0, "docker accepted it");
  }
}

TEST_CASE("hardlinked context files stay hardlinked within one COPY source, as docker keeps them") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("hl/a", "H\n");
  p.file("hl/o", "other\n");
  fs::create_directories(p.ctx / "hl/sub");
  fs::create_hard_link(p.ctx / "hl/a", p.ctx / "hl/b");
  fs::create_hard_link(p.ctx / "hl/a", p.ctx / "hl/sub/c");
  p.file("arch/in-tar", "t\n");
  auto t = test::run_command({"tar", "-cf", (p.ctx / "a.tar").string(), "-C", (p.ctx / "arch").string(), "in-tar"});
  REQUIRE_MESSAGE(t.exit_code == 0, t.err);
  fs::remove_all(p.ctx / "arch");
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "COPY hl /x/\n"
         "COPY . /all/\n"
         "COPY hl/a hl/b /y/\n"
         "COPY hl/* /w/\n"
         "ADD a.tar hl /m/\n");
  auto layers = same_as_docker(p, "copylinks:3", 1);
  REQUIRE(layers.size() == 6);
  // Independently of docker: link entries for the streamed and the mounted path alike.
  CHECK(layers[1].find("x/b hardlink 420 0:0 0 -> x/a") != std::string::npos);
  CHECK(layers[1].find("x/sub/c hardlink 420 0:0 0 -> x/a") != std::string::npos);
  CHECK(layers[2].find("all/hl/b hardlink") != std::string::npos);
  CHECK(layers[3].find("hardlink") == std::string::npos);
  CHECK(layers[4].find("hardlink") == std::string::npos);
  CHECK(layers[5].find("m/b hardlink 420 0:0 0 -> m/a") != std::string::npos);
}

TEST_CASE("COPY --from a stage keeps the stage's hardlinks within one source, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  // The links live in a lower layer of the source stage: its files are read through a view.
  p.file("Dockerfile", "FROM " + p.base + " AS src\n"
         "RUN mkdir -p /hd/sub && echo x > /hd/a && ln /hd/a /hd/b && ln /hd/a /hd/sub/c && chown 7:8 /hd/a\n"
         "FROM " + p.base + "\n"
         "COPY --from=src /hd /z/\n"
         "COPY --from=src /hd/a /hd/b /y/\n");
  auto layers = same_as_docker(p, "copylinks:4", 1);
  REQUIRE(layers.size() == 3);
  CHECK(layers[1].find("z/b hardlink 420 7:8 0 -> z/a") != std::string::npos);
  CHECK(layers[1].find("z/sub/c hardlink 420 7:8 0 -> z/a") != std::string::npos);
  CHECK(layers[2].find("hardlink") == std::string::npos);
}
