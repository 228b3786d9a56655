// RUN --mount=type=bind|cache|tmpfs|secret end to end through the real binary, compared with
// docker build (BuildKit, the semantics reference) wherever docker 20.10 supports the option:
// the RUNs write what they saw through their mounts into files of the image, so comparing
// the two images' file trees compares both what RUN read and which mount-point directories
// the layer kept.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

constexpr const char* kLocalBase = "cbuild-test-busybox:1";

// A string no earlier run used: cache ids and secret values must not collide with the shared
// dockerd's leftovers.
std::string unique(const std::string& prefix) {
  auto t = std::chrono::steady_clock::now().time_since_epoch().count();
  return prefix + std::to_string(::getpid()) + "x" + std::to_string(t);
}

// Every regular file under `dir` whose bytes contain `needle`.
std::vector<std::string> files_containing(const fs::path& dir, const std::string& needle) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_symlink() || !it->is_regular_file()) continue;
    if (read_file(it->path(), 1u << 30).find(needle) != std::string::npos) out.push_back(it->path().string());
  }
  return out;
}

std::string md5_of(const std::string& text) {
  TempDir t;
  write_file_atomic(t.path() / "f", text);
  auto r = test::run_command({"md5sum", (t.path() / "f").string()});
  return r.out.substr(0, 32);
}

// Builds the context's Dockerfile with docker too, and checks that both images hold the same
// file tree and history (RUN's created_by names no mount). Returns false without a docker peer.
bool same_as_docker(const test::BuildProject& p, const json& config, const fs::path& mine, const fs::path& work,
                    const std::vector<std::string>& flags) {
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return false;
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work, flags);
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  auto hd = test::history_created_by(b.config), hm = test::history_created_by(config);
  CHECK_MESSAGE(hd == hm, "docker: " << json(hd).dump(1) << "\ncbuild: " << json(hm).dump(1));
  return true;
}

}  // namespace

TEST_CASE("RUN --mount: bind + cache + tmpfs + secret show what docker shows; the layer keeps docker's mount points") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  TempDir work;
  p.file("a.txt", "hello\n");
  p.file("sub/b", "s\n");
  p.file("ignored.log", "never seen\n");
  p.file(".dockerignore", "*.log\n");
  std::string s1 = unique("s1-secret-"), s2 = unique("s2-secret-");
  write_file_atomic(work.path() / "s1", s1);
  write_file_atomic(work.path() / "s2", s2);
  std::string cache_id = unique("cache-");
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "RUN --mount=type=bind,target=/m/ctx \\\n"
         "    --mount=type=bind,source=sub,target=/m2/a/b \\\n"
         "    --mount=type=bind,source=a.txt,target=/m3/file.txt \\\n"
         "    --mount=type=cache,id=" + cache_id + ",target=/c/cache \\\n"
         "    --mount=type=tmpfs,target=/t/tmp \\\n"
         "    --mount=type=secret,id=s1 \\\n"
         "    --mount=type=secret,id=s2,target=/sec/x/y,mode=0440,uid=1000,gid=1000 \\\n"
         "    --mount=type=secret,id=missing \\\n"
         "    ls -a /m/ctx > /out.ctx; cat /m2/a/b/b /m3/file.txt > /out.bind; \\\n"
         "    md5sum /run/secrets/s1 /sec/x/y | cut -c1-32 > /out.sec; ls -a /run/secrets > /out.runsecrets; \\\n"
         "    stat -c '%n %a %u %g' /run/secrets/s1 /sec/x/y /c/cache /t/tmp > /out.stat; \\\n"
         "    (touch /m/ctx/w 2>/dev/null && echo rw || echo ro) > /out.ro; \\\n"
         "    echo kept > /c/cache/f; echo gone > /t/tmp/f; ls /c/cache /t/tmp > /out.during; \\\n"
         "    grep -c ' /t/tmp tmpfs' /proc/mounts > /out.tmpfs; \\\n"
         "    (test -e /run/secrets/missing && echo yes || echo no) > /out.missing\n");
  std::vector<std::string> secrets = {"--secret", "id=s1,src=" + (work.path() / "s1").string(), "--secret",
                                      "id=s2,src=" + (work.path() / "s2").string()};
  std::vector<std::string> args = secrets;
  args.insert(args.end(), {"-t", "mounts:1"});
  auto r = p.build(args);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [config, mine] = p.image("docker.io/library/mounts:1", work.path() / "mine/rootfs");

  // What RUN saw.
  CHECK(test::read_text(mine / "out.ctx") == ".\n..\n.dockerignore\nDockerfile\na.txt\nsub\n");
  CHECK(test::read_text(mine / "out.bind") == "s\nhello\n");
  CHECK(test::read_text(mine / "out.sec") == md5_of(s1) + "\n" + md5_of(s2) + "\n");
  CHECK(test::read_text(mine / "out.runsecrets") == ".\n..\ns1\n");
  CHECK(test::read_text(mine / "out.stat") ==
        "/run/secrets/s1 400 0 0\n/sec/x/y 440 1000 1000\n/c/cache 755 0 0\n/t/tmp 1777 0 0\n");
  CHECK(test::read_text(mine / "out.ro") == "ro\n");
  CHECK(test::read_text(mine / "out.during") == "/c/cache:\nf\n\n/t/tmp:\nf\n");
  CHECK(test::read_text(mine / "out.tmpfs") == "1\n");
  CHECK(test::read_text(mine / "out.missing") == "no\n");
  // What the layer kept: the directories made as mount points (empty), the parents of file
  // mount points, never a file mount point, a mount's content, or the context.
  for (const char* d : {"m/ctx", "m2/a/b", "c/cache", "t/tmp", "m3", "run/secrets", "sec/x"}) {
    CHECK_MESSAGE(fs::is_directory(mine / d), d);
    CHECK_MESSAGE(fs::is_empty(mine / d), d);
  }
  CHECK_FALSE(fs::exists(p.ctx / "w"));
  // No secret anywhere: not in the image's files, its config or history, the build cache or
  // the snapshots.
  for (const auto& s : {s1, s2}) {
    CHECK(files_containing(mine, s).empty());
    CHECK(files_containing(p.root, s).empty());
    CHECK(config.dump().find(s) == std::string::npos);
  }
  CHECK_FALSE(test::has_mounts_under(p.dir.path()));
  CHECK(fs::is_empty(p.tmp));  // no secret staging dir (nor anything else) left behind

  same_as_docker(p, config, mine, work.path() / "docker", secrets);
}

TEST_CASE("RUN --mount=type=cache: kept between builds as docker does; shaped by uid/gid/mode; seeded by from=; prune --all clears it") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  TempDir work;
  std::string id = unique("c-"), id_owned = unique("o-"), id_seeded = unique("s-");
  auto dockerfile = [&](const std::string& word) {
    p.file("Dockerfile", "FROM " + p.base + " AS src\n"
           "RUN mkdir -p /data/x && echo seed > /data/x/f\n"
           "FROM " + p.base + "\n"
           "RUN --mount=type=cache,id=" + id + ",target=/cache/" + word + " \\\n"
           "    --mount=type=cache,id=" + id_owned + ",target=/owned,uid=1000,gid=1000,mode=0700 \\\n"
           "    --mount=type=cache,id=" + id_seeded + ",from=src,source=/data,target=/seeded \\\n"
           "    echo " + word + " >> /cache/" + word + "/log && cat /cache/" + word + "/log > /seen && \\\n"
           "    stat -c '%a %u %g' /owned /seeded > /shape && ls -R /seeded > /seed && echo more > /seeded/x/g\n");
  };
  dockerfile("first");
  auto a = p.build({"-t", "c:1"});
  REQUIRE_MESSAGE(a.exit_code == 0, a.err);
  auto [c1, one] = p.image("docker.io/library/c:1", work.path() / "one/rootfs");
  CHECK(test::read_text(one / "seen") == "first\n");
  CHECK(test::read_text(one / "shape") == "700 1000 1000\n755 0 0\n");
  CHECK(test::read_text(one / "seed") == "/seeded:\nx\n\n/seeded/x:\nf\n");
  bool docker = same_as_docker(p, c1, one, work.path() / "d1", {});

  dockerfile("second");  // another RUN (no cache hit), the same cache ids
  auto b = p.build({"-t", "c:2"});
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  auto [c2, two] = p.image("docker.io/library/c:2", work.path() / "two/rootfs");
  CHECK(test::read_text(two / "seen") == "first\nsecond\n");
  CHECK(test::read_text(two / "seed") == "/seeded:\nx\n\n/seeded/x:\nf\ng\n");  // the seed is not re-applied
  CHECK_FALSE(fs::exists(two / "cache/second/log"));  // cache content never goes in a layer
  if (docker) same_as_docker(p, c2, two, work.path() / "d2", {});

  auto prune = test::run_cbuild({"--root", p.root.string(), "prune", "--all"});
  REQUIRE_MESSAGE(prune.exit_code == 0, prune.err);
  CHECK(prune.out.find("Deleted cache mounts: 3") != std::string::npos);
  auto c = p.build({"--no-cache", "-t", "c:3"});
  REQUIRE_MESSAGE(c.exit_code == 0, c.err);
  auto [c3, three] = p.image("docker.io/library/c:3", work.path() / "three/rootfs");
  CHECK(test::read_text(three / "seen") == "second\n");
  CHECK(test::read_text(three / "seed") == "/seeded:\nx\n\n/seeded/x:\nf\n");
}

TEST_CASE("RUN --mount=type=bind: from a stage and an image; rw writes thrown away; relative targets; symlinks kept inside") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  TempDir work;
  p.file("a.txt", "hello\n");
  p.file("sub/b", "s\n");
  fs::create_symlink("/etc", p.ctx / "etclink");
  fs::create_symlink("../../..", p.ctx / "up");
  fs::create_symlink("sub", p.ctx / "sublink");
  p.file("Dockerfile", "FROM " + p.base + " AS src\n"
         "RUN mkdir -p /data/x && echo fromstage > /data/x/f && echo root > /rootfile\n"
         "FROM " + p.base + "\n"
         "WORKDIR /w\n"
         "RUN --mount=type=bind,target=/m,rw sh -c 'echo new > /m/new.txt; echo changed > /m/a.txt; "
         "cat /m/a.txt /m/new.txt > /out.rw; ls /m > /out.rwls'\n"
         "RUN --mount=type=bind,from=src,source=/data,target=/s --mount=type=bind,from=src,target=/s2 "
         "--mount=type=bind,from=" + p.base + ",source=/etc/passwd,target=/p cat /s/x/f /s2/rootfile /p > /out.stage\n"
         "RUN --mount=type=bind,from=src,source=/data,target=/s,rw --mount=type=bind,source=a.txt,target=/f,rw "
         "sh -c 'echo x > /s/x/f; echo y > /f; cat /s/x/f /f > /out.rwstage'\n"
         "RUN --mount=type=bind,target=rel ls /w/rel > /out.rel\n"
         "RUN --mount=type=bind,source=up,target=/u --mount=type=bind,source=sublink,target=/sl ls /u /sl > /out.links\n");
  auto r = p.build({"-t", "b:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [config, mine] = p.image("docker.io/library/b:1", work.path() / "mine/rootfs");
  CHECK(test::read_text(mine / "out.rw") == "changed\nnew\n");
  CHECK(test::read_text(mine / "out.rwls") == "Dockerfile\na.txt\netclink\nnew.txt\nsub\nsublink\nup\n");
  CHECK(test::read_text(p.ctx / "a.txt") == "hello\n");  // the context is untouched
  CHECK_FALSE(fs::exists(p.ctx / "new.txt"));
  CHECK(test::read_text(mine / "out.stage").rfind("fromstage\nroot\nroot:x:0:0:", 0) == 0);
  CHECK(test::read_text(mine / "out.rwstage") == "x\ny\n");
  CHECK(test::read_text(mine / "out.rel") == "Dockerfile\na.txt\netclink\nsub\nsublink\nup\n");
  CHECK(test::read_text(mine / "out.links") == "/sl:\nb\n\n/u:\nDockerfile\na.txt\netclink\nsub\nsublink\nup\n");
  for (const char* d : {"m", "s", "s2", "w/rel", "u", "sl"}) CHECK_MESSAGE(fs::is_directory(mine / d), d);
  CHECK_FALSE(fs::exists(mine / "p"));
  CHECK_FALSE(fs::exists(mine / "f"));
  CHECK_FALSE(test::has_mounts_under(p.dir.path()));
  CHECK(fs::is_empty(p.tmp));
  same_as_docker(p, config, mine, work.path() / "docker", {});
}

TEST_CASE("RUN --mount: the cache key follows what a bind shows and a from= stage's result; a secret's id, never its value") {
  REQUIRE_ROOT();
  test::BuildProject p(kLocalBase);
  TempDir work;
  p.file("bound/x", "1\n");
  p.file("other", "o\n");
  std::string v1 = unique("first-value-"), v2 = unique("second-value-");
  write_file_atomic(work.path() / "secret", v1);
  p.file("Dockerfile", "FROM " + p.base + " AS src\n"
         "COPY other /other\n"
         "FROM " + p.base + "\n"
         "RUN --mount=type=bind,from=src,target=/s cat /s/other > /from-stage\n"
         "RUN --mount=type=bind,source=bound,target=/b --mount=type=secret,id=s cat /b/x > /seen\n");
  std::vector<std::string> args = {"--secret", "id=s,src=" + (work.path() / "secret").string(), "-t", "k:1"};
  auto count_cached = [](const test::CommandResult& r) {
    std::size_t n = 0;
    for (std::size_t at = r.err.find("CACHED"); at != std::string::npos; at = r.err.find("CACHED", at + 1)) ++n;
    return n;
  };
  auto first = p.build(args);
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  CHECK(count_cached(first) == 0);

  write_file_atomic(work.path() / "secret", v2);  // a new value: the key stays
  p.file("unrelated", "u\n");                         // nor does a file no step reads
  auto second = p.build(args);
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  CHECK(count_cached(second) == 3);  // COPY and both RUNs
  CHECK(second.out == first.out);

  p.file("bound/x", "2\n");  // the bound content changed: that RUN runs again
  auto third = p.build(args);
  REQUIRE_MESSAGE(third.exit_code == 0, third.err);
  CHECK(count_cached(third) == 2);
  auto [c3, t3] = p.image("docker.io/library/k:1", work.path() / "t3/rootfs");
  CHECK(test::read_text(t3 / "seen") == "2\n");

  // The from= stage's result changed: the RUN reading it runs again although its parent (the
  // base) did not change.
  p.file("other", "changed\n");
  auto fourth = p.build(args);
  REQUIRE_MESSAGE(fourth.exit_code == 0, fourth.err);
  CHECK(count_cached(fourth) == 0);
  auto [c4, t4] = p.image("docker.io/library/k:1", work.path() / "t4/rootfs");
  CHECK(test::read_text(t4 / "from-stage") == "changed\n");
  CHECK(files_containing(p.root, v1).empty());
  CHECK(files_containing(p.root, v2).empty());
}

TEST_CASE("RUN --mount: secret env= and tmpfs size= (newer BuildKit options docker 20.10 lacks)") {
  REQUIRE_ROOT();
  test::BuildProject p(kLocalBase);
  std::string value = unique("env-secret-");
  p.file("Dockerfile", "FROM " + p.base + "\n"
         "RUN --mount=type=secret,id=tok,env=TOKEN --mount=type=secret,id=tok,env=BOTH,target=/tok \\\n"
         "    --mount=type=tmpfs,target=/small,size=1m \\\n"
         "    sh -c 'echo \"$TOKEN\" | md5sum | cut -c1-32 > /env; cat /tok | md5sum | cut -c1-32 >> /env; \\\n"
         "    test -e /run/secrets/tok && echo file >> /env; grep \" /small \" /proc/mounts | grep -o size=[0-9a-z]* > /size'\n");
  auto r = p.build({"--secret", "id=tok,env=CBUILD_TEST_TOKEN", "-t", "e:1"}, {"CBUILD_TEST_TOKEN=" + value});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/e:1", work.path() / "rootfs");
  CHECK(test::read_text(mine / "env") == md5_of(value + "\n") + "\n" + md5_of(value) + "\n");
  CHECK(test::read_text(mine / "size") == "size=1024k\n");
  CHECK(config.dump().find(value) == std::string::npos);
  CHECK(files_containing(p.root, value).empty());
}

TEST_CASE("RUN --mount: a missing source or secret and an unknown from= give one clear message and leave nothing mounted") {
  REQUIRE_ROOT();
  test::BuildProject p(kLocalBase);
  p.file("ignored.log", "x\n");
  p.file(".dockerignore", "*.log\n");
  fs::create_symlink("/etc", p.ctx / "etclink");
  auto tags = [&] { return oci::LayoutStore::open(p.root)->tags().size(); };
  std::size_t before = tags();
  std::string expect;
  SUBCASE("a missing bind source") {
    p.file("Dockerfile", "FROM " + p.base + "\n\nRUN --mount=type=bind,source=nope,target=/x true\n");
    expect = "Dockerfile:3: RUN --mount=type=bind,source=nope,target=/x true: --mount=type=bind,source=nope,target=/x: "
             "\"/nope\" not found in the build context";
  }
  SUBCASE("a source excluded by .dockerignore") {
    p.file("Dockerfile", "FROM " + p.base + "\nRUN --mount=type=bind,source=ignored.log,target=/x cat /x\n");
    expect = "--mount=type=bind,source=ignored.log,target=/x: \"/ignored.log\" not found in the build context (it is "
             "excluded by .dockerignore)";
  }
  SUBCASE("a symlink that points out of the context") {
    p.file("Dockerfile", "FROM " + p.base + "\nRUN --mount=type=bind,source=etclink/passwd,target=/x cat /x\n");
    expect = "Dockerfile:2: RUN --mount=type=bind,source=etclink/passwd,target=/x cat /x: "
             "--mount=type=bind,source=etclink/passwd,target=/x: \"/etclink/passwd\" not found in the build context";
  }
  SUBCASE("a missing source in a stage") {
    p.file("Dockerfile", "FROM " + p.base + " AS a\nFROM " + p.base + "\nRUN --mount=type=bind,from=a,source=/nope,target=/x true\n");
    expect = "Dockerfile:3:";
  }
  SUBCASE("an unknown from=") {
    p.file("Dockerfile", "FROM " + p.base + "\nRUN --mount=type=bind,from=nosuchstage,target=/x true\n");
    expect = "Dockerfile:2: RUN --mount=type=bind,from=nosuchstage,target=/x true: "
             "--mount=type=bind,from=nosuchstage,target=/x: from=nosuchstage names no stage of this Dockerfile and no "
             "usable image";
  }
  SUBCASE("a required secret nobody gave") {
    p.file("Dockerfile", "FROM " + p.base + "\nRUN --mount=type=secret,id=reqd,required=true true\n");
    expect = "Dockerfile:2: RUN --mount=type=secret,id=reqd,required=true true: --mount=type=secret,id=reqd,target=/run/"
             "secrets/reqd: secret \"reqd\" is required but was not given";
  }
  SUBCASE("a --secret file that does not exist") {
    p.file("Dockerfile", "FROM " + p.base + "\nRUN --mount=type=secret,id=s true\n");
    auto r = p.build({"--secret", "id=s,src=/nonexistent/secret", "-t", "x:1"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("--secret id=s: cannot read \"/nonexistent/secret\"") != std::string::npos);
  }
  if (!expect.empty()) {
    auto r = p.build({"-t", "x:1"});
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(r.err.find(expect) != std::string::npos, r.err);
    CHECK(r.err.find("cbuild: error:") != std::string::npos);
  }
  CHECK(tags() == before);
  CHECK_FALSE(test::has_mounts_under(p.dir.path()));
  CHECK(fs::is_empty(p.tmp));
}
