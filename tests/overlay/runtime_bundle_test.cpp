#include "overlay/runtime_bundle.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/tar_writer.h"
#include "tests/overlay/layer_test_util.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using cbuild::Error;
using cbuild::TempDir;
using nlohmann::json;
using namespace cbuild::overlay;
using namespace cbuild::test;

TEST_CASE("runtime bundle: config.json per the image → runtime conversion") {
  ImageRuntimeInfo info;
  info.entrypoint = {"/bin/app"};
  info.cmd = {"--serve"};
  info.env = {"A=1"};
  info.working_dir = "/srv";
  info.labels = {{"org.example", "x"}};
  ExecUser u;
  u.uid = 1000;
  u.gid = 1000;
  u.groups = {1500};
  u.home = "/home/app";
  json c = json::parse(runtime_config_json(info, u));
  CHECK(c["process"]["args"] == json({"/bin/app", "--serve"}));
  CHECK(c["process"]["env"] == json({"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1",
                                     "HOME=/home/app"}));
  CHECK(c["process"]["cwd"] == "/srv");
  CHECK(c["process"]["user"]["uid"] == 1000);
  CHECK(c["process"]["user"]["additionalGids"] == json({1500}));
  CHECK(c["root"]["path"] == "rootfs");
  CHECK(c["annotations"]["org.example"] == "x");
  CHECK(c["process"]["capabilities"]["bounding"].size() == 14);
  // Arguments replace Cmd, not the Entrypoint.
  json c2 = json::parse(runtime_config_json(info, u, {"--check"}));
  CHECK(c2["process"]["args"] == json({"/bin/app", "--check"}));
  CHECK(json::parse(runtime_config_json(ImageRuntimeInfo{.cmd = {"sh"}}, ExecUser{}))["process"]["cwd"] == "/");
  CHECK_THROWS_WITH_AS(runtime_config_json(ImageRuntimeInfo{}, ExecUser{}), doctest::Contains("no command"), Error);
}

TEST_CASE("runtime bundle: runc runs the unpacked bundle unchanged [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  make_busybox_rootfs(tmp.path() / "base");
  cbuild::oci::BufferSink base_tar;
  {
    cbuild::oci::TarWriter w(base_tar);
    w.add_tree(tmp.path() / "base");
    w.finish();
  }
  std::string top = make_tar({file_item("etc/motd", "hello from layer 2\n"), file_item("bin/.wh.vi", "")});
  std::vector<std::string> layers = {base_tar.str(), top};
  std::size_t next = 0;
  ImageRuntimeInfo info;
  info.cmd = {"sh", "-c", "cat /etc/motd; id -u; pwd; test -e /bin/vi || echo vi-gone; echo $FOO"};
  info.env = {"FOO=bar"};
  info.user = "app";
  info.working_dir = "/tmp";
  fs::path bundle = tmp.path() / "bundle";
  write_bundle(bundle, info, [&]() -> std::unique_ptr<cbuild::oci::TarReader> {
    return next < layers.size() ? reader_for(layers[next++]) : nullptr;
  });
  CHECK(fs::exists(bundle / "config.json"));
  CHECK_FALSE(exists_nofollow(bundle / "rootfs/bin/vi"));
  CHECK_THROWS_AS(write_bundle(bundle, info, [] { return std::unique_ptr<cbuild::oci::TarReader>(); }), Error);

  if (std::system("command -v runc >/dev/null 2>&1") != 0) {
    if (in_ci()) FAIL("runc is not installed (scripts/install-deps.sh installs it)");
    MESSAGE("skipped: runc not installed");
    return;
  }
  std::string id = "cbuild-test-" + std::to_string(::getpid());
  std::string state = (tmp.path() / "runc-state").string();
  std::string out = (tmp.path() / "out").string();
  std::string cmd = "runc --root '" + state + "' run --bundle '" + bundle.string() + "' " + id + " >'" + out +
                    "' 2>&1 </dev/null; rc=$?; runc --root '" + state + "' delete -f " + id +
                    " >/dev/null 2>&1; exit $rc";
  int rc = std::system(cmd.c_str());
  INFO("runc output: ", read_text(out));
  CHECK(rc == 0);
  CHECK(read_text(out) == "hello from layer 2\n1000\n/tmp\nvi-gone\nbar\n");
}
