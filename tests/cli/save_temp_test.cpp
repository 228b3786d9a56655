// `cbuild save -o FILE` writes a temp file beside FILE and renames it when complete. A save
// killed mid-write leaves that temp file; the next save to the directory removes it. A save that
// is still running keeps its temp file whatever other saves do.
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "oci/base/fs.h"
#include "oci/compression.h"
#include "oci/image_config.h"
#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "tests/support/background_command.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using namespace cbuild::oci;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::run_cbuild;

namespace {

// An image of one uncompressed layer holding `bytes` of incompressible data, tagged `name`.
void put_image(LayoutStore& store, const fs::path& scratch, const std::string& name, std::size_t bytes) {
  fs::create_directories(scratch);
  {
    std::ofstream f(scratch / "data", std::ios::binary);
    std::uint64_t x = 88172645463325252ull ^ bytes;
    std::vector<std::uint64_t> block(1 << 17);
    for (std::size_t done = 0; done < bytes; done += block.size() * 8) {
      for (auto& w : block) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w = x;
      }
      f.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(std::min(bytes - done, block.size() * 8)));
    }
  }
  LayerResult layer = write_layer(scratch, store, LayerWriterOptions{.codec = Codec::None});
  fs::remove(scratch / "data");
  ImageConfig cfg;
  cfg.architecture = "amd64";
  cfg.os = "linux";
  cfg.rootfs.diff_ids = {layer.diff_id};
  std::string cj = cfg.to_json();
  Manifest m;
  m.media_type = std::string(media_types::kOciManifest);
  m.config = Descriptor{.media_type = std::string(media_types::kOciConfig), .digest = store.put_blob(cj),
                        .size = static_cast<std::int64_t>(cj.size())};
  m.layers = {layer.descriptor};
  std::string mj = m.to_json();
  store.set_tag(name, Descriptor{.media_type = std::string(media_types::kOciManifest), .digest = store.put_blob(mj),
                                 .size = static_cast<std::int64_t>(mj.size())});
}

std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& n : test::dir_names(dir))
    if (n.starts_with(".") && n.find(".tmp-") != std::string::npos) out.push_back(n);
  return out;
}

// Waits until `dir` holds a save temp file with data in it; false if `cmd` ends first.
bool wait_for_temp(test::BackgroundCommand& cmd, const fs::path& dir) {
  for (int i = 0; i < 60000; ++i) {
    for (const auto& n : temp_files(dir)) {
      std::error_code ec;
      if (fs::file_size(dir / n, ec) > 0 && !ec) return true;
    }
    if (cmd.wait(0ms)) return false;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

struct SaveProject {
  TempDir t;
  fs::path root = t.path() / "root";
  fs::path out = t.path() / "out";
  SaveProject() {
    auto store = LayoutStore::open(root);
    put_image(*store, t.path() / "big", "docker.io/library/big:1", std::size_t{512} << 20);
    put_image(*store, t.path() / "small", "docker.io/library/small:1", 4096);
    fs::create_directories(out);
  }
  // The image a saved archive holds reads back through `cbuild load` into a fresh store.
  void check_loads(const fs::path& archive, const std::string& tag) const {
    fs::path other = t.path() / ("loaded-" + archive.filename().string());
    auto r = run_cbuild({"--root", other.string(), "load", "-i", archive.string()});
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(LayoutStore::open(other)->resolve("docker.io/library/" + tag).has_value());
  }
};

}  // namespace

TEST_CASE("save: the temp file of a SIGKILLed save is removed by the next save to its directory") {
  SaveProject p;
  auto save = test::BackgroundCommand::cbuild({"--root", p.root.string(), "save", "-o", (p.out / "big.tar").string(), "big:1"});
  REQUIRE_MESSAGE(wait_for_temp(save, p.out), "the save finished before it could be killed:\n" << save.err());
  ::kill(save.pid(), SIGKILL);
  REQUIRE(save.wait(15s));
  REQUIRE(temp_files(p.out).size() == 1);
  CHECK_FALSE(fs::exists(p.out / "big.tar"));

  auto r = run_cbuild({"--root", p.root.string(), "save", "-o", (p.out / "small.tar").string(), "small:1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(temp_files(p.out).empty());
  CHECK(test::dir_names(p.out) == std::vector<std::string>{"small.tar"});
  p.check_loads(p.out / "small.tar", "small:1");
}

TEST_CASE("save: a running save's temp file survives another save to the same directory") {
  SaveProject p;
  auto big = test::BackgroundCommand::cbuild({"--root", p.root.string(), "save", "-o", (p.out / "big.tar").string(), "big:1"});
  REQUIRE_MESSAGE(wait_for_temp(big, p.out), "the save finished too early:\n" << big.err());
  auto r = run_cbuild({"--root", p.root.string(), "save", "-o", (p.out / "small.tar").string(), "small:1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  auto status = big.wait(120s);
  REQUIRE(status);
  CHECK_MESSAGE(*status == 0, big.err());
  CHECK(temp_files(p.out).empty());
  CHECK(test::dir_names(p.out) == std::vector<std::string>{"big.tar", "small.tar"});
  p.check_loads(p.out / "big.tar", "big:1");
}
