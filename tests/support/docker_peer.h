// A private dockerd for differential tests: `docker build` (BuildKit) is the semantics
// reference cbuild is compared with. Its state is under /var/tmp/cbuild-test-dockerd (kept
// between runs as a cache), with no iptables and no bridge; builds run with --network=none.
//
// One dockerd serves every test process: ctest runs each test case in a process of its own,
// and a dockerd per process would cost seconds per case. The flock on
// /var/tmp/cbuild-test-dockerd.lock arbitrates: a process using the daemon holds it shared;
// starting or stopping the daemon takes it exclusively, so nobody stops it under a user (an
// older checkout's suite, which takes it exclusively for its whole run, simply takes turns).
// The process that found no daemon starts one (detached, so it outlives that process). Who
// stops it: the ctest fixture (tests/CMakeLists.txt: start_shared_dockerd() writes the `keep`
// marker, stop_shared_dockerd() stops it after the last case); without the marker (a test
// binary run by hand) the last process to leave stops it.
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
  // files (a rebuilt probe binary, another checkout) is never used by mistake.
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
  std::string base_;
  int lock_fd_ = -1;  // holds the shared flock while this process may use the daemon
};

// The ctest fixture's ends (tests/main.cpp --cbuild-docker-peer=start|stop). Start leaves a
// running dockerd and the `keep` marker behind (empty result) or says why it could not;
// stop waits for the processes using the daemon, then stops it and removes the marker.
std::string start_shared_dockerd();
std::string stop_shared_dockerd();

// The FROM name a test shares with docker: the peer's base when the peer runs (as root), else
// the name BuildProject tags in its own store.
std::string base_for_test();

// The created_by of each history entry of an image config, in order.
std::vector<std::string> history_created_by(const nlohmann::json& config);

}  // namespace cbuild::test
