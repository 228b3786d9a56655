// Ctrl-C stops a build cleanly, through the real binary: SIGINT sent to the build's process
// group (as a terminal does, so the sandbox's PID 1 gets it too) during a long RUN, during a
// COPY of a large context, and while two stages RUN in parallel. Each time cbuild exits
// promptly with 130 and one "interrupted" line, and leaves no mount, no process, no temp dir,
// no tag — and the store keeps working.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "tests/support/build_project.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace std::chrono_literals;

namespace {

// Interrupts the running build once its stderr shows every one of `started`, then checks
// everything a stopped build must (and must not) leave.
void interrupt_and_check(test::BuildProject& p, test::BackgroundCommand& build, const std::vector<std::string>& started,
                         const std::string& token, const std::string& tag) {
  bool running = build.wait_for_err(started, 60s);
  REQUIRE_MESSAGE(running, "the build did not get to the point to interrupt:\n" << build.err());
  build.signal_group(SIGINT);
  auto t0 = std::chrono::steady_clock::now();
  std::optional<int> status = build.wait(15s);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string err = build.err();
  INFO("stderr:\n" << err);
  REQUIRE_MESSAGE(status, "cbuild did not exit within 15 s of SIGINT");
  CHECK(*status == 130);
  CHECK(seconds < 10);
  CHECK(test::count_lines_starting(err, "cbuild: error:") == 1);
  CHECK(err.find("cbuild: error: interrupted\n") != std::string::npos);
  CHECK(build.out().empty());
  CHECK_FALSE(p.has_tag(tag));
  auto left = p.leftovers(token);
  CHECK_MESSAGE(left.empty(), test::lines(left));

  auto images = test::run_cbuild({"--root", p.root.string(), "images"});
  CHECK_MESSAGE(images.exit_code == 0, images.err);
  CHECK(images.out.find("cbuild-test-busybox") != std::string::npos);
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY Dockerfile /\nRUN echo after > /after\n");
  auto next = p.build_within(std::chrono::seconds(120), {"-t", "after:1"});
  CHECK_MESSAGE(next.exit_code == 0, next.err);
  CHECK(p.has_tag("docker.io/library/after:1"));
  CHECK(p.leftovers(token).empty());
}

std::string unique_token(const char* what) { return std::string("cbuild-int-") + what + "-" + std::to_string(::getpid()); }

}  // namespace

TEST_CASE("interrupt: SIGINT during a long RUN") {
  REQUIRE_ROOT();
  test::BuildProject p;
  std::string token = unique_token("run");
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo started-" + token + " && sleep 30 && echo " + token + "\n");
  auto build = p.start({"-t", "int:run"});
  interrupt_and_check(p, build, {"started-" + token}, token, "docker.io/library/int:run");
}

TEST_CASE("interrupt: SIGINT during a COPY of a large context") {
  REQUIRE_ROOT();
  test::BuildProject p;
  // 320 MB that does not compress (so hashing, copying and compressing take seconds), plus a
  // sparse 1 GiB file that reads as zeros.
  std::mt19937_64 rng(42);
  std::vector<std::uint64_t> block((8u << 20) / sizeof(std::uint64_t));
  for (int f = 0; f < 40; ++f) {
    for (auto& w : block) w = rng();
    std::ofstream(p.ctx / ("big" + std::to_string(f)), std::ios::binary)
        .write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(block.size() * sizeof(block[0])));
  }
  fs::resize_file((std::ofstream(p.ctx / "sparse"), p.ctx / "sparse"), 1ull << 30);
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY . /ctx/\n");
  auto build = p.start({"-t", "int:copy"});
  // Interrupt a while after the COPY step has begun: it hashes the context, copies it into
  // the upper dir, then writes and compresses the layer (about 10 s here in all).
  REQUIRE(build.wait_for_err({"COPY . /ctx/"}, 60s));
  std::this_thread::sleep_for(2s);
  interrupt_and_check(p, build, {"COPY . /ctx/"}, "", "docker.io/library/int:copy");
}

TEST_CASE("interrupt: SIGINT while two stages RUN in parallel") {
  REQUIRE_ROOT();
  test::BuildProject p;
  std::string token = unique_token("par");
  p.file("Dockerfile",
         "FROM " + p.base + " AS a\n"
         "RUN echo started-a-" + token + " && sleep 30 && echo " + token + "\n"
         "FROM " + p.base + " AS b\n"
         "RUN echo started-b-" + token + " && sleep 30 && echo " + token + "\n"
         "FROM scratch\n"
         "COPY --from=a /etc/passwd /a\n"
         "COPY --from=b /etc/passwd /b\n");
  auto build = p.start({"-t", "int:par", "--jobs", "2"});
  interrupt_and_check(p, build, {"started-a-" + token, "started-b-" + token}, token, "docker.io/library/int:par");
}
