// `cbuild run` end to end (the sandbox itself is tested in tests/overlay/sandbox_test.cpp).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/digest.h"
#include "oci/sinks.h"
#include "oci/tar_writer.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using cbuild::test::has_mounts_under;
using cbuild::test::run_cbuild;

TEST_CASE("cbuild run --rootfs: options end at IMAGE, exit code passes through [root]") {
  REQUIRE_ROOT();
  cbuild::TempDir tmp;
  fs::path rootfs = tmp.path() / "rootfs";
  cbuild::test::make_busybox_rootfs(rootfs);
  auto r = run_cbuild({"run", "--rm", "--rootfs", "-e", "A=1", "-e", "B=2", "--hostname", "hh", "-u", "app",
                       rootfs.string(), "sh", "-c", "echo $A$B -e --rm; hostname; id -u; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "12 -e --rm\nhh\n1000\n");
  r = run_cbuild({"run", "--rootfs", "--network", "none", rootfs.string(), "ls", "/sys/class/net"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "lo\n");
  r = run_cbuild({"run", "--rootfs", rootfs.string(), "no-such-program"});
  CHECK(r.exit_code == 1);
  CHECK(r.err == "cbuild: error: sandbox: exec \"no-such-program\": executable file not found in $PATH\n");
  r = run_cbuild({"run", "--rootfs", "--memory", "12q", rootfs.string(), "true"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("--memory") != std::string::npos);
  r = run_cbuild({"run", "--bogus", rootfs.string(), "true"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("unknown option \"--bogus\"") != std::string::npos);
  r = run_cbuild({"run", "-it", "--rootfs", rootfs.string(), "true"});
  CHECK(r.err.find("--tty is not supported") != std::string::npos);
  r = run_cbuild({"run", "-i", "--rootfs", rootfs.string(), "true"});
  CHECK(r.exit_code == 0);
  r = run_cbuild({"run"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("IMAGE is required") != std::string::npos);
  r = run_cbuild({"run", "--rootfs", "--memory", "64m", "--pids-limit", "50", "--cpus", "1", rootfs.string(),
                  "sh", "-c", "exit 0"});
  CHECK(r.exit_code == 0);
}

namespace {

std::string put_blob(const fs::path& layout, const std::string& bytes) {
  cbuild::oci::Digest d = cbuild::oci::Digest::of(bytes);
  fs::create_directories(layout / "blobs/sha256");
  std::ofstream(layout / "blobs/sha256" / d.hex(), std::ios::binary) << bytes;
  return d.str();
}

// An OCI layout (the store's format) holding one busybox image named `name`, with a second
// layer adding /etc/motd, Env FOO=bar and WorkingDir /tmp.
void make_layout_image(const fs::path& layout, const std::string& name) {
  cbuild::TempDir tmp;
  cbuild::test::make_busybox_rootfs(tmp.path() / "rootfs");
  cbuild::test::write_text(tmp.path() / "top/etc/motd", "layer two\n");
  std::vector<std::string> tars;
  for (const char* dir : {"rootfs", "top"}) {
    cbuild::oci::BufferSink sink;
    cbuild::oci::TarWriter w(sink);
    w.add_tree(tmp.path() / dir);
    w.finish();
    tars.push_back(sink.str());
  }
  nlohmann::json layers = nlohmann::json::array(), diff_ids = nlohmann::json::array();
  for (const auto& t : tars) {
    std::string d = put_blob(layout, t);
    layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", d}, {"size", t.size()}});
    diff_ids.push_back(d);
  }
  nlohmann::json config = {{"architecture", "amd64"},
                           {"os", "linux"},
                           {"config", {{"Env", {"PATH=/bin:/usr/bin", "FOO=bar"}}, {"Cmd", {"sh"}}, {"WorkingDir", "/tmp"}}},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  std::string cfg = config.dump();
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", put_blob(layout, cfg)}, {"size", cfg.size()}}},
      {"layers", layers}};
  std::string man = manifest.dump();
  nlohmann::json index = {
      {"schemaVersion", 2},
      {"manifests", {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                      {"digest", put_blob(layout, man)},
                      {"size", man.size()},
                      {"annotations", {{"org.opencontainers.image.ref.name", name}}}}}}};
  std::ofstream(layout / "index.json") << index.dump();
  std::ofstream(layout / "oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
}

}  // namespace

TEST_CASE("cbuild run / mount / umount / unpack with an image in the store [root]") {
  REQUIRE_ROOT();
  cbuild::TempDir tmp;
  fs::path root = tmp.path() / "store";
  make_layout_image(root, "docker.io/cbuild-test/busybox:1");

  // run: the image's Env and WorkingDir apply, flags override, arguments replace Cmd.
  auto r = run_cbuild({"--root", root.string(), "run", "--rm", "-e", "BAZ=1", "cbuild-test/busybox:1", "sh", "-c",
                       "echo $FOO$BAZ; pwd; cat /etc/motd; echo changed > /etc/motd"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "bar1\n/tmp\nlayer two\n");
  CHECK(r.err == "");
  r = run_cbuild({"--root", root.string(), "run", "oci:" + root.string() + ":docker.io/cbuild-test/busybox:1", "cat",
                  "/etc/motd"});
  CHECK(r.out == "layer two\n");  // the previous run's change was discarded
  r = run_cbuild({"--root", root.string(), "run", "nosuch:image", "true"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("not found") != std::string::npos);
  CHECK_FALSE(has_mounts_under(tmp.path()));

  // mount / umount
  r = run_cbuild({"--root", root.string(), "mount", "cbuild-test/busybox:1"});
  REQUIRE(r.exit_code == 0);
  std::string target = r.out.substr(0, r.out.size() - 1);
  CHECK(cbuild::test::read_text(fs::path(target) / "etc/motd") == "layer two\n");
  CHECK(has_mounts_under(tmp.path()));
  r = run_cbuild({"--root", root.string(), "mount", "cbuild-test/busybox:1"});
  CHECK(r.out == target + "\n");  // idempotent
  r = run_cbuild({"--root", root.string(), "umount", target});
  CHECK(r.exit_code == 0);
  CHECK_FALSE(has_mounts_under(tmp.path()));
  r = run_cbuild({"--root", root.string(), "umount", "cbuild-test/busybox:1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("not mounted") != std::string::npos);

  // unpack → runc
  fs::path bundle = tmp.path() / "bundle";
  r = run_cbuild({"--root", root.string(), "unpack", "cbuild-test/busybox:1", bundle.string(), "sh", "-c",
                  "cat /etc/motd; echo $FOO; pwd"});
  REQUIRE(r.exit_code == 0);
  CHECK(fs::exists(bundle / "config.json"));
  r = run_cbuild({"--root", root.string(), "unpack", "cbuild-test/busybox:1", bundle.string()});
  CHECK(r.exit_code == 1);  // not empty
  std::string id = "cbuild-cli-" + std::to_string(::getpid());
  std::string state = (tmp.path() / "runc").string();
  auto rr = cbuild::test::run_command({"sh", "-c", "runc --root '" + state + "' run --bundle '" + bundle.string() +
                                                     "' " + id + "; rc=$?; runc --root '" + state + "' delete -f " +
                                                     id + " >/dev/null 2>&1; exit $rc"});
  INFO(rr.err);
  CHECK(rr.exit_code == 0);
  CHECK(rr.out == "layer two\nbar\n/tmp\n");
}
