// A build killed with SIGKILL cannot clean up after itself: the next command that opens the
// store reclaims what it left (overlay mounts, scratch and temp dirs, its lease), through the
// real binary. And that reclaiming never touches a build that is still running.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "oci/layout_store.h"
#include "oci/stream.h"
#include "tests/support/build_project.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace std::chrono_literals;

namespace {

// SIGKILLs every process whose command line mentions one of `needles` (what a killed build's
// sandbox left running), then waits until none is left.
void kill_processes_mentioning(const std::vector<std::string>& needles) {
  for (int round = 0; round < 100; ++round) {
    bool any = false;
    for (const auto& n : needles)
      for (const auto& p : test::processes_mentioning(n)) {
        any = true;
        ::kill(static_cast<pid_t>(std::stol(p.substr(0, p.find(':')))), SIGKILL);
      }
    if (!any) return;
    std::this_thread::sleep_for(100ms);
  }
  FAIL("processes survive SIGKILL: " << test::lines(test::processes_mentioning(needles.front())));
}

// Every blob of the store reads back with the digest it is stored under.
void check_blobs_verify(const fs::path& root) {
  auto store = oci::LayoutStore::open(root);
  for (const auto& name : test::dir_names(root / "blobs" / "sha256")) {
    oci::Digest d = oci::Digest::parse("sha256:" + name);
    CHECK_NOTHROW(oci::read_all(*store->open(d), std::size_t{1} << 30));
  }
}

}  // namespace

// The RUN lines print "started-42-TOKEN" once they run: the step's text (which progress shows
// first) says "$((6*7))", so waiting for the output waits for the mounted, running step.

TEST_CASE("reclaim: the next command after a SIGKILLed build removes its mounts, scratch and lease") {
  REQUIRE_ROOT();
  test::BuildProject p;
  std::string token = "cbuild-kill9-" + std::to_string(::getpid());
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo started-$((6*7))-" + token + " && sleep 30 && echo " + token + "\n");
  auto build = p.start({"-t", "killed:1"});
  REQUIRE_MESSAGE(build.wait_for_err({"started-42-" + token}, 60s), build.err());
  // The RUN step runs: its rootfs is mounted, and the build holds a lease.
  REQUIRE_FALSE(test::mounts_mentioning(p.root.string()).empty());
  REQUIRE_FALSE(test::dir_names(p.root / "leases").empty());

  ::kill(build.pid(), SIGKILL);  // cbuild only, not its group
  REQUIRE(build.wait(15s));
  // The RUN dies with cbuild (its PID 1's parent-death signal, tested elsewhere); killed here
  // as well so that this test is only about what the next command reclaims.
  kill_processes_mentioning({p.dir.path().string(), token});
  // What the dead build left: the overlay mount and its scratch in the store.
  auto left = p.leftovers(token);
  REQUIRE_MESSAGE(!left.empty(), "the killed build left nothing to reclaim");
  INFO("left by the killed build:\n" << test::lines(left));

  auto images = p.cbuild({"images"});
  CHECK_MESSAGE(images.exit_code == 0, images.err);
  CHECK(images.out.find("cbuild-test-busybox") != std::string::npos);
  auto after = p.leftovers(token);
  CHECK_MESSAGE(after.empty(), test::lines(after));
  CHECK(test::mounts_mentioning(p.dir.path().string()).empty());
  CHECK(test::dir_names(p.root / "leases").empty());
  CHECK(test::dir_names(p.tmp).empty());

  check_blobs_verify(p.root);
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo after > /after\n");
  auto next = p.build_within(120s, {"-t", "after:1"});
  CHECK_MESSAGE(next.exit_code == 0, next.err);
  CHECK(p.has_tag("docker.io/library/after:1"));
  CHECK(p.leftovers(token).empty());
}

TEST_CASE("reclaim: prune --all after a SIGKILLed build also reclaims what it left") {
  REQUIRE_ROOT();
  test::BuildProject p;
  std::string token = "cbuild-kill9p-" + std::to_string(::getpid());
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo started-$((6*7))-" + token + " && sleep 30 && echo " + token + "\n");
  auto build = p.start({"-t", "killed:2"});
  REQUIRE_MESSAGE(build.wait_for_err({"started-42-" + token}, 60s), build.err());
  ::kill(build.pid(), SIGKILL);
  REQUIRE(build.wait(15s));
  kill_processes_mentioning({p.dir.path().string(), token});
  REQUIRE_FALSE(p.leftovers(token).empty());

  auto prune = p.cbuild({"prune", "--all"});
  CHECK_MESSAGE(prune.exit_code == 0, prune.err);
  auto after = p.leftovers(token);
  CHECK_MESSAGE(after.empty(), test::lines(after));
  check_blobs_verify(p.root);
}

TEST_CASE("reclaim: a live build's mounts and scratch survive other commands opening the store") {
  REQUIRE_ROOT();
  test::BuildProject p;
  std::string token = "cbuild-live-" + std::to_string(::getpid());
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo started-$((6*7))-" + token + " && sleep 10 && echo kept > /kept\n");
  auto build = p.start({"-t", "live:1"});
  REQUIRE_MESSAGE(build.wait_for_err({"started-42-" + token}, 60s), build.err());
  auto mounted = test::mounts_mentioning(p.root.string());
  REQUIRE_FALSE(mounted.empty());
  for (const auto& args : std::vector<std::vector<std::string>>{{"images"}, {"prune", "--all"}, {"images"}}) {
    auto r = p.cbuild(args);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
  }
  CHECK(test::mounts_mentioning(p.root.string()) == mounted);
  auto status = build.wait(60s);
  REQUIRE(status);
  CHECK_MESSAGE(*status == 0, build.err());
  CHECK(p.has_tag("docker.io/library/live:1"));
  CHECK(p.leftovers(token).empty());
}
