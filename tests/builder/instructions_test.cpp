// Typed instructions (builder/dockerfile/instructions.h): flags, validation, messages, warnings.
#include "builder/dockerfile/instructions.h"

#include <doctest/doctest.h>

#include "builder/dockerfile/parser.h"

using namespace cbuild::builder::dockerfile;

namespace {
std::vector<TypedInstruction> typed(const std::string& text, std::vector<DockerfileWarning>* w = nullptr) {
  std::vector<DockerfileWarning> local;
  auto tree = parse(text, "Dockerfile");
  return type_instructions(tree, w ? *w : local);
}

std::string error_of(const std::string& text) {
  try {
    typed(text);
  } catch (const DockerfileError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("typed: FROM, RUN mounts and modes, COPY/ADD flags") {
  auto t = typed(
      "FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n"
      "RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=tok "
      "--mount=type=bind,from=src,source=/a,target=/b,rw --mount=type=tmpfs,target=/t,size=64m "
      "--network=none --security=sandbox make\n"
      "COPY --from=build --chown=1:2 --chmod=0755 --link --parents --exclude=*.md --exclude=x a b /dst/\n"
      "ADD --checksum=sha256:abc --keep-git-dir=true https://x/y /z\n"
      "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD [\"curl\", \"-f\", \"x\"]\n");
  REQUIRE(t.size() == 5);
  const auto& f = std::get<FromInstr>(t[0].instr);
  CHECK(f.image == "golang:1.22");
  CHECK(f.name == "build");
  CHECK(f.platform == "$BUILDPLATFORM");
  const auto& r = std::get<RunInstr>(t[1].instr);
  REQUIRE(r.mounts.size() == 4);
  CHECK(r.mounts[0].type == RunMount::Type::Cache);
  CHECK(r.mounts[0].id == "/root/.cache");
  CHECK(r.mounts[0].sharing == "locked");
  CHECK_FALSE(r.mounts[0].readonly);
  CHECK(r.mounts[1].type == RunMount::Type::Secret);
  CHECK(r.mounts[1].target == "/run/secrets/tok");
  CHECK(r.mounts[2].from == "src");
  CHECK_FALSE(r.mounts[2].readonly);
  CHECK(r.mounts[3].size == 64u * 1024 * 1024);
  CHECK(r.network == "none");
  CHECK(r.command == std::vector<std::string>{"make"});
  const auto& c = std::get<CopyInstr>(t[2].instr);
  CHECK(c.from == "build");
  CHECK(c.chown == "1:2");
  CHECK(c.chmod == "0755");
  CHECK(c.link);
  CHECK(c.parents);
  CHECK(c.excludes == std::vector<std::string>{"*.md", "x"});
  CHECK(c.sources == std::vector<std::string>{"a", "b"});
  CHECK(c.dest == "/dst/");
  const auto& a = std::get<CopyInstr>(t[3].instr);
  CHECK(a.add);
  CHECK(a.checksum == "sha256:abc");
  CHECK(a.keep_git_dir == true);
  const auto& h = std::get<HealthcheckInstr>(t[4].instr);
  CHECK(h.test == std::vector<std::string>{"CMD", "curl", "-f", "x"});
  CHECK(h.interval == 90'000'000'000LL);
  CHECK(h.timeout == 500'000'000LL);
  CHECK(h.retries == 3);
}

TEST_CASE("typed: errors name the file, line and instruction, with suggestions") {
  CHECK(error_of("FROM a\nCOPPY a b\n") == "Dockerfile:2: unknown instruction: COPPY (did you mean COPY?)");
  CHECK(error_of("FROM a\nfrobnicate\n") == "Dockerfile:2: unknown instruction: FROBNICATE");
  CHECK(error_of("FROM a\nCOPY --form=x a b\n").find("Dockerfile:2: COPY: unknown flag: --form") == 0);
  CHECK(error_of("FROM a\nADD --from=x a b\n").find("ADD: unknown flag: --from") != std::string::npos);
  CHECK(error_of("FROM a\nCOPY a\n").find("COPY requires at least two arguments") != std::string::npos);
  CHECK(error_of("FROM a\nRUN --mount=type=nfs,target=/x y\n").find("unsupported mount type") != std::string::npos);
  CHECK(error_of("FROM a\nRUN --mount=type=cache y\n").find("target= is required") != std::string::npos);
  CHECK(error_of("FROM a\nRUN --mount=type=bind,target=/x,bogus=1 y\n").find("unexpected key 'bogus'") != std::string::npos);
  CHECK(error_of("FROM a\nRUN --network=wifi y\n").find("unsupported network mode") != std::string::npos);
  CHECK(error_of("FROM a b\n").find("FROM requires either one or three arguments") != std::string::npos);
  CHECK(error_of("FROM a AS 1x\n").find("invalid name for build stage") != std::string::npos);
  CHECK(error_of("FROM a\nSHELL sh -c\n").find("SHELL requires the arguments to be in JSON form") != std::string::npos);
  CHECK(error_of("FROM a\nHEALTHCHECK --interval=1us CMD x\n").find("cannot be less than 1ms") != std::string::npos);
  CHECK(error_of("FROM a\nHEALTHCHECK PING x\n").find("unknown type") != std::string::npos);
  CHECK(error_of("FROM a\nONBUILD ONBUILD RUN x\n").find("Chaining ONBUILD") != std::string::npos);
  CHECK(error_of("FROM a\nONBUILD FROM b\n").find("isn't allowed as an ONBUILD trigger") != std::string::npos);
  CHECK(error_of("FROM a\nCMD --doit [\"a\"]\n").find("CMD: unknown flag: --doit") != std::string::npos);
  CHECK(error_of("FROM a\nCOPY --link=maybe a b\n").find("expecting boolean value") != std::string::npos);
  CHECK(error_of("FROM a\nCOPY --from a b\n").find("missing a value on flag: --from") != std::string::npos);
}

TEST_CASE("typed: warnings for MAINTAINER and JSON-looking shell form; COPY heredocs chomped, RUN's raw") {
  std::vector<DockerfileWarning> w;
  auto t = typed("FROM a\nMAINTAINER me\nCMD ['a', 'b']\nRUN <<-EOF\n\techo hi\n\t\tx\nEOF\nCOPY <<-EOF /f\n\techo hi\n\t\tx\nEOF\n", &w);
  REQUIRE(w.size() == 2);
  CHECK(w[0].to_string().find("Dockerfile:2: MAINTAINER is deprecated") == 0);
  CHECK(w[1].to_string().find("Dockerfile:3: CMD: arguments look like a JSON array") == 0);
  const auto& r = std::get<RunInstr>(t[3].instr);
  REQUIRE(r.heredocs.size() == 1);
  CHECK(r.heredocs[0].content == "\techo hi\n\t\tx\n");
  CHECK(r.heredocs[0].chomp);
  const auto& c = std::get<CopyInstr>(t[4].instr);
  REQUIRE(c.heredocs.size() == 1);
  CHECK(c.heredocs[0].content == "echo hi\nx\n");
}

TEST_CASE("Go durations and suggestions") {
  CHECK(parse_go_duration("1h2m3s") == 3723'000'000'000LL);
  CHECK(parse_go_duration("1.5s") == 1'500'000'000LL);
  CHECK(parse_go_duration("0") == 0);
  CHECK_FALSE(parse_go_duration("10"));
  CHECK_FALSE(parse_go_duration("1x"));
  CHECK(suggest_instruction("ENTRYPINT") == "ENTRYPOINT");
  CHECK(suggest_instruction("wrkdir") == "WORKDIR");
  CHECK(suggest_instruction("zzzzzzzz").empty());
}
