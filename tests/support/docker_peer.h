// A private dockerd for differential tests: `docker build` (BuildKit) is the semantics
// reference cbuild is compared with. Started once per test process with its state under
// /var/tmp/cbuild-test-dockerd (kept between runs as a cache), with no iptables and no bridge,
// and stopped when the process exits. Builds run with --network=none. The process holds an
// flock on /var/tmp/cbuild-test-dockerd.lock meanwhile, so concurrent test runs (several
// checkouts) take turns instead of stopping each other's dockerd.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/run_command.h"

namespace cbuild::test {

struct DockerBuild {
  CommandResult result;          // docker build's exit code and output
  std::filesystem::path rootfs;  // the image's flattened file tree (when the build succeeded)
  nlohmann::json config;         // the image config
};

class DockerPeer {
 public:
  // The base image both builders start from (see busybox_rootfs.h), tagged by the hash of its
  // tree ("cbuild-test-busybox:<hash>"), so a base loaded by an earlier run with different
  // files (a rebuilt probe binary) is never used by mistake.
  const std::string& base() const { return base_; }

  // The running peer. If dockerd cannot start, FAILs in CI; elsewhere returns nullptr after a
  // visible MESSAGE, so a developer without docker can still run the rest.
  static DockerPeer* get();

  CommandResult docker(const std::vector<std::string>& args, const std::string& input = {});
  // docker build of `context` with `dockerfile` (a path), tag `tag`, plus `extra` flags; then
  // docker save, and the layers flattened into work/rootfs.
  DockerBuild build(const std::filesystem::path& context, const std::filesystem::path& dockerfile,
                    const std::filesystem::path& work, const std::vector<std::string>& extra = {});

  ~DockerPeer();

 private:
  DockerPeer() = default;
  std::filesystem::path dir_;
  std::string base_;
  int pid_ = -1;
  int lock_fd_ = -1;
};

// The FROM name a test shares with docker: the peer's base when the peer runs (as root), else
// the name BuildProject tags in its own store.
std::string base_for_test();

// The created_by of each history entry of an image config, in order.
std::vector<std::string> history_created_by(const nlohmann::json& config);

}  // namespace cbuild::test
