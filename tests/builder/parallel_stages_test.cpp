// Independent stages run at the same time (builder/plan/stage_graph.h), through the real binary: the
// RUNs of two stages overlap, the image is the same as a serial (--jobs 1) build's, and the
// first failing stage stops the others with one clear error and nothing left behind.
#include <doctest/doctest.h>

#include <chrono>
#include <sstream>

#include "tests/support/build_project.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

// Far more than any build here needs; a scheduling bug that deadlocks fails at this point.
constexpr std::chrono::seconds kLimit{120};

// Seconds since boot from /proc/uptime as a RUN wrote it ("12345.67 …").
double uptime_in(const fs::path& file) {
  std::istringstream in(read_file(file));
  double v = -1;
  in >> v;
  return v;
}

// Unpacks `tag` as a runtime bundle into `out`; returns the error output, empty on success.
std::string stage_image(const std::string& root, const std::string& tag, const fs::path& out) {
  auto r = test::run_cbuild({"--root", root, "unpack", tag, out.string()});
  return r.exit_code == 0 ? "" : r.err;
}

}  // namespace

TEST_CASE("parallel stages: the RUNs of two independent stages overlap in time") {
  REQUIRE_ROOT();
  test::BuildProject p;
  // Each RUN notes when it starts and ends (system uptime, the same clock in every sandbox);
  // serial stages could not overlap.
  std::string run = "RUN cat /proc/uptime > /start && sleep 2 && cat /proc/uptime > /end\n";
  p.file("Dockerfile", "FROM " + p.base + " AS a\n" + run + "FROM " + p.base + " AS b\nENV WHICH=b\n" + run +
                           "FROM scratch\nCOPY --from=a /start /a-start\nCOPY --from=a /end /a-end\n"
                           "COPY --from=b /start /b-start\nCOPY --from=b /end /b-end\nCMD [\"/none\"]\n");
  auto r = p.build_within(kLimit, {"-t", "par:1", "--jobs", "2"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir out;
  std::string unpack_err = stage_image(p.root.string(), "par:1", out.path() / "bundle");
  REQUIRE_MESSAGE(unpack_err.empty(), unpack_err);
  fs::path rootfs = out.path() / "bundle" / "rootfs";
  double as = uptime_in(rootfs / "a-start"), ae = uptime_in(rootfs / "a-end");
  double bs = uptime_in(rootfs / "b-start"), be = uptime_in(rootfs / "b-end");
  INFO("a: " << as << " .. " << ae << ", b: " << bs << " .. " << be);
  REQUIRE(as > 0);
  REQUIRE(bs > 0);
  CHECK(as < be);
  CHECK(bs < ae);
  CHECK(p.leftovers("").empty());
}

TEST_CASE("parallel stages: the image is the same as a serial build's") {
  REQUIRE_ROOT();
  test::BuildProject p;
  p.file("shared.txt", "shared\n");
  // Three independent stages (two on the same base with the same first steps, so they also
  // race for the same cache key and snapshot), one stage built on another, and a final stage
  // taking from all of them.
  p.file("Dockerfile",
         "FROM " + p.base + " AS a\n"
         "COPY shared.txt /s\n"
         "RUN echo a > /a && sleep 1\n"
         "FROM " + p.base + " AS b\n"
         "COPY shared.txt /s\n"
         "RUN echo b > /b && sleep 1\n"
         "FROM b AS b2\n"
         "RUN cat /b /s > /b2\n"
         "FROM scratch AS c\n"
         "COPY shared.txt /c\n"
         "FROM " + p.base + "\n"
         "COPY --from=a /a /out/a\n"
         "COPY --from=b2 /b2 /out/b2\n"
         "COPY --from=c /c /out/c\n"
         "RUN ls /out > /listing\n");
  std::vector<std::string> env{"SOURCE_DATE_EPOCH=1700000000"};
  auto par = p.build_within(kLimit, {"-t", "det:par", "--no-cache"}, env);
  REQUIRE_MESSAGE(par.exit_code == 0, par.err);
  auto ser = p.build_within(kLimit, {"-t", "det:ser", "--no-cache", "--jobs", "1"}, env);
  REQUIRE_MESSAGE(ser.exit_code == 0, ser.err);
  CHECK(par.out == ser.out);  // the image ID (config digest)
  auto store = oci::LayoutStore::open(p.root);
  auto dp = store->resolve("docker.io/library/det:par"), ds = store->resolve("docker.io/library/det:ser");
  REQUIRE(dp);
  REQUIRE(ds);
  CHECK(dp->digest == ds->digest);
  // And a warm parallel rebuild takes everything from the cache, giving the same image again.
  auto warm = p.build_within(kLimit, {"-t", "det:warm"}, env);
  REQUIRE_MESSAGE(warm.exit_code == 0, warm.err);
  CHECK(warm.out == par.out);
  CHECK(p.leftovers("").empty());
}

TEST_CASE("parallel stages: the first failure stops the running stages, one error, nothing left") {
  REQUIRE_ROOT();
  test::BuildProject p;
  std::string token = "cbuild-par-fail-" + std::to_string(::getpid());
  p.file("Dockerfile",
         "FROM " + p.base + " AS slow\n"
         "RUN sleep 30 && echo " + token + "\n"
         "FROM " + p.base + " AS bad\n"
         "RUN sleep 1 && exit 3\n"
         "FROM scratch\n"
         "COPY --from=slow /etc/passwd /a\n"
         "COPY --from=bad /etc/passwd /b\n");
  auto t0 = std::chrono::steady_clock::now();
  auto r = p.build_within(kLimit, {"-t", "fail:1", "--jobs", "2"});
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(seconds < 20);  // the slow stage was cancelled, not waited for (it sleeps 30 s)
  CHECK(test::count_lines_starting(r.err, "cbuild: error:") == 1);
  CHECK(r.err.find("cbuild: error: Dockerfile:4: RUN sleep 1 && exit 3: process") != std::string::npos);
  CHECK(r.err.find("exit code: 3") != std::string::npos);
  CHECK(r.err.find("CANCELED") != std::string::npos);  // the slow stage's RUN, as BuildKit shows it
  CHECK(r.out.empty());
  CHECK_FALSE(p.has_tag("docker.io/library/fail:1"));
  auto left = p.leftovers(token);
  CHECK_MESSAGE(left.empty(), test::lines(left));
  // The store still works.
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo ok > /ok\n");
  auto next = p.build_within(kLimit, {"-t", "ok:1"});
  CHECK_MESSAGE(next.exit_code == 0, next.err);
}
