// The first commands on a new store, run at once: every one of them succeeds and they leave one
// valid OCI layout — whether the store directory is missing or exists empty.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "tests/support/background_command.h"

using namespace cbuild;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

void twenty_first_opens(const fs::path& root) {
  std::vector<test::BackgroundCommand> cmds;
  cmds.reserve(20);
  for (int i = 0; i < 20; ++i) cmds.push_back(test::BackgroundCommand::cbuild({"--root", root.string(), "images"}));
  int ok = 0;
  for (auto& c : cmds) {
    auto status = c.wait(60s);
    REQUIRE_MESSAGE(status, "cbuild images did not finish");
    CHECK_MESSAGE(*status == 0, c.err());
    if (*status == 0) ++ok;
  }
  CHECK(ok == 20);
  CHECK(nlohmann::json::parse(read_file(root / "oci-layout")) == nlohmann::json{{"imageLayoutVersion", "1.0.0"}});
  auto index = nlohmann::json::parse(read_file(root / "index.json"));
  CHECK(index["schemaVersion"] == 2);
  CHECK(index["manifests"].empty());
  CHECK(fs::is_directory(root / "blobs" / "sha256"));
  auto store = oci::LayoutStore::open(root);
  CHECK(store->tags().empty());
  // Nothing of the creation is left behind.
  CHECK(test::dir_names(root / "tmp").empty());
}

}  // namespace

TEST_CASE("store open: twenty concurrent first opens of a missing store all succeed") {
  TempDir t;
  twenty_first_opens(t.path() / "new");
}

TEST_CASE("store open: twenty concurrent first opens of an empty directory all succeed") {
  TempDir t;
  fs::create_directories(t.path() / "empty");
  twenty_first_opens(t.path() / "empty");
}

TEST_CASE("store open: a layout whose creator was killed before oci-layout is completed") {
  TempDir t;
  fs::path root = t.path() / "half";
  fs::create_directories(root / "blobs" / "sha256");
  fs::create_directories(root / "tmp");
  write_file_atomic(root / "index.json", R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})");
  auto store = oci::LayoutStore::open(root);
  CHECK(fs::exists(root / "oci-layout"));
  // A directory holding anything else is still refused.
  fs::create_directories(t.path() / "other" / "blobs" / "sha256");
  std::ofstream(t.path() / "other" / "blobs" / "sha256" / "abc") << "x";
  CHECK_THROWS_WITH(oci::LayoutStore::open(t.path() / "other"), doctest::Contains("not an OCI image layout"));
  CHECK(test::dir_names(t.path() / "other") == std::vector<std::string>{"blobs"});  // nothing written into it
}
