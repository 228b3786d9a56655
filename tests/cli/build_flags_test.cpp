// `cbuild build` command-line parsing through the real binary: flags anywhere on the line as
// with docker build, docker's wording for unknown flags, and SOURCE_DATE_EPOCH validation.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "oci/image_config.h"
#include "tests/support/build_project.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

using cbuild::test::BuildProject;
using cbuild::test::CommandResult;
using cbuild::test::run_cbuild;

namespace {

// The image ID: the last line of stdout.
std::string image_id(const CommandResult& r) {
  std::string s = r.out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  auto nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

struct FlagsProject : BuildProject {
  FlagsProject() : BuildProject("cbuild-test-busybox:1") {
    file("a.txt", "hello\n");
    file("Dockerfile", "FROM scratch\nCOPY a.txt /\n");
  }
  // Runs cbuild with `args` (the context is not appended), a fixed epoch unless given.
  CommandResult run(std::vector<std::string> args, std::vector<std::string> env = {"SOURCE_DATE_EPOCH=1700000000"}) const {
    args.insert(args.begin() + (!args.empty() && args[0] == "build" ? 1 : 0), "--progress=plain");
    return cbuild(std::move(args), {}, std::move(env));
  }
};

}  // namespace

TEST_CASE("build: flags after the context are parsed as before it") {
  REQUIRE_ROOT();
  FlagsProject p;
  const std::string ctx = p.ctx.string();
  auto before = p.run({"build", "--no-cache", "-t", "r:0", ctx});
  REQUIRE_MESSAGE(before.exit_code == 0, before.err);

  auto after = p.run({"build", "-t", "r:1", ctx, "--no-cache"});
  REQUIRE_MESSAGE(after.exit_code == 0, after.err);
  CHECK(image_id(after) == image_id(before));
  CHECK(p.has_tag("docker.io/library/r:1"));

  // The default command too, and -q after the context still means quiet.
  auto quiet = p.run({"-t", "r:2", ctx, "-q"});
  REQUIRE_MESSAGE(quiet.exit_code == 0, quiet.err);
  CHECK(quiet.out == image_id(before) + "\n");
  CHECK(p.has_tag("docker.io/library/r:2"));

  // A repeatable option takes one value per occurrence, wherever it stands.
  auto tags = p.run({"-t", "r:3", ctx, "-t", "r:4", "--label", "k=v"});
  REQUIRE_MESSAGE(tags.exit_code == 0, tags.err);
  CHECK(p.has_tag("docker.io/library/r:3"));
  CHECK(p.has_tag("docker.io/library/r:4"));

  // Two contexts are still one too many.
  auto two = p.run({"-t", "r:5", ctx, ctx});
  CHECK(two.exit_code == 2);
}

TEST_CASE("build: an unknown flag is named as docker names it, exit 2") {
  auto long_flag = run_cbuild({"build", "--foo", "."});
  CHECK(long_flag.exit_code == 2);
  CHECK_MESSAGE(long_flag.err.find("cbuild: error: unknown flag: --foo\n") == 0, long_flag.err);

  auto with_value = run_cbuild({"build", ".", "--foo=bar"});
  CHECK(with_value.exit_code == 2);
  CHECK_MESSAGE(with_value.err.find("cbuild: error: unknown flag: --foo\n") == 0, with_value.err);

  auto short_flag = run_cbuild({"-t", "x", ".", "-x"});
  CHECK(short_flag.exit_code == 2);
  CHECK_MESSAGE(short_flag.err.find("cbuild: error: unknown shorthand flag: 'x' in -x\n") == 0, short_flag.err);

  // --log-level did nothing; it is gone rather than silently ignored.
  auto log_level = run_cbuild({"--log-level", "debug", "build", "."});
  CHECK(log_level.exit_code == 2);
  CHECK_MESSAGE(log_level.err.find("unknown flag: --log-level") != std::string::npos, log_level.err);
}

TEST_CASE("build: a malformed SOURCE_DATE_EPOCH is a usage error naming where it came from") {
  REQUIRE_ROOT();
  FlagsProject p;
  const std::string ctx = p.ctx.string();
  for (std::string bad : {"abc", "12abc", "-5", " 12", "+12", "99999999999999999999"}) {
    CAPTURE(bad);
    auto env = p.run({"-t", "r:1", ctx}, {"SOURCE_DATE_EPOCH=" + bad});
    CHECK(env.exit_code == 2);
    CHECK_MESSAGE(env.err.find("cbuild: error: environment variable SOURCE_DATE_EPOCH \"" + bad +
                               "\": not a number of seconds") == 0,
                  env.err);
    auto arg = p.run({"-t", "r:1", "--build-arg", "SOURCE_DATE_EPOCH=" + bad, ctx}, {});
    CHECK(arg.exit_code == 2);
    CHECK_MESSAGE(arg.err.find("cbuild: error: --build-arg SOURCE_DATE_EPOCH \"" + bad +
                               "\": not a number of seconds") == 0,
                  arg.err);
  }
  CHECK_FALSE(p.has_tag("docker.io/library/r:1"));
}

TEST_CASE("build: --build-arg SOURCE_DATE_EPOCH sets the image time, over the environment") {
  REQUIRE_ROOT();
  FlagsProject p;
  auto r = p.run({"-t", "r:1", "--build-arg", "SOURCE_DATE_EPOCH=1600000000", p.ctx.string()},
                 {"SOURCE_DATE_EPOCH=1700000000"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [config, where] = p.image("docker.io/library/r:1", p.dir.path() / "tree");
  CHECK(config["created"] == cbuild::oci::rfc3339_utc(1600000000));
}
