// `cbuild -f Dockerfile -t name:tag CONTEXT` end to end through the real binary, compared with
// docker build (the semantics reference) where docker can show it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/image_config.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "overlay/snapshot_store.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/as_test_user.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"
#include "tests/support/store_image.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

TEST_CASE("build: every common instruction, compared with docker build") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("a.txt", "hello\n");
  p.file("sub/b", "x\n");
  p.file("script.sh", "#!/bin/sh\necho from script\n");
  p.file("ignored.log", "never copied\n");
  p.file(".dockerignore", "*.log\n");
  p.file("Dockerfile",
         "# syntax=docker/dockerfile:1\n"
         "FROM " + p.base + "\n"
         "ARG VERSION=1.0\n"
         "ENV APP_HOME=/app GREETING=\"hello world\"\n"
         "LABEL org.example.version=$VERSION maintainer=\"someone\"\n"
         "WORKDIR $APP_HOME\n"
         "COPY a.txt sub ./\n"
         "COPY --chmod=0755 script.sh /usr/local/bin/\n"
         "COPY --chown=app:extra a.txt /home/app/\n"
         "COPY . /ctx/\n"
         "RUN echo \"$GREETING $VERSION\" > greeting && script.sh > out && rm /etc/group && mkdir -p rel/dir\n"
         "WORKDIR rel\n"
         "EXPOSE 8080 53/udp\n"
         "VOLUME /data\n"
         "USER app\n"
         "ENTRYPOINT [\"/bin/sh\", \"-c\"]\n"
         "CMD echo hi\n"
         "STOPSIGNAL SIGTERM\n");
  auto r = p.build({"-t", "app:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.rfind("sha256:", 0) == 0);
  TempDir work;
  auto [config, mine] = p.image("docker.io/library/app:1", work.path() / "mine/rootfs");
  CHECK(test::read_text(mine / "app/greeting") == "hello world 1.0\n");
  CHECK(test::read_text(mine / "app/out") == "from script\n");
  CHECK_FALSE(fs::exists(mine / "ctx/ignored.log"));
  CHECK(config["config"]["WorkingDir"] == "/app/rel");
  CHECK(config["config"]["Labels"]["org.example.version"] == "1.0");

  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  // Without the syntax line: docker would fetch that frontend image (no network here).
  std::string text = read_file(p.ctx / "Dockerfile");
  write_file_atomic(work.path() / "Dockerfile.docker", text.substr(text.find('\n') + 1));
  auto b = docker->build(p.ctx, work.path() / "Dockerfile.docker", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  for (const char* k : {"Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes", "StopSignal"})
    CHECK_MESSAGE(b.config["config"].value(k, json()) == config["config"].value(k, json()), k);
  auto hd = test::history_created_by(b.config), hm = test::history_created_by(config);
  CHECK_MESSAGE(hd == hm, "docker: " << json(hd).dump(1) << "\ncbuild: " << json(hm).dump(1));
}

TEST_CASE("build: a relative --root works for RUN steps (overlay needs absolute paths)") {
  REQUIRE_ROOT();
  test::BuildProject p("busybox:rel-root");
  p.file("a.txt", "a\n");
  // The COPY's snapshot is written lazily for the RUN: that path came from the store root.
  p.file("Dockerfile", "FROM busybox:rel-root\nCOPY a.txt /\nRUN cat /a.txt > /hi\n");
  std::string cmd = "cd " + p.dir.path().string() + " && exec " CBUILD_BINARY " --root store --progress=plain -t rel:1 ctx";
  auto r = test::run_command({"/bin/sh", "-c", cmd});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto [config, tree] = p.image("docker.io/library/rel:1", p.dir.path() / "out" / "rootfs");
  CHECK(read_file(tree / "hi") == "a\n");
}

TEST_CASE("build: a warm rebuild reuses every step and gives the same image; --no-cache rebuilds") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("a.txt", "hello\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY a.txt /\nRUN cat /a.txt > /b.txt\nENV X=1\n");
  auto first = p.build({"-t", "app:1"});
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  auto second = p.build({"-t", "app:2"});
  REQUIRE_MESSAGE(second.exit_code == 0, second.err);
  CHECK(second.out == first.out);
  CHECK(second.err.find("CACHED") != std::string::npos);
  auto store = oci::LayoutStore::open(p.root);
  CHECK(store->resolve("docker.io/library/app:1")->digest == store->resolve("docker.io/library/app:2")->digest);

  p.file("a.txt", "changed\n");
  auto third = p.build({"-t", "app:3"});
  REQUIRE(third.exit_code == 0);
  CHECK(third.out != first.out);
  TempDir work;
  auto [config, fsroot] = p.image("docker.io/library/app:3", work.path() / "r/rootfs");
  CHECK(test::read_text(fsroot / "b.txt") == "changed\n");

  auto nocache = p.build({"--no-cache", "-t", "app:4"});
  REQUIRE(nocache.exit_code == 0);
  CHECK(nocache.err.find("CACHED") == std::string::npos);
}

TEST_CASE("build: a warm rebuild under the same tag writes nothing to the store") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo hello > /hello\nENV APP=/app\nCMD [\"sh\"]\n");
  auto first = p.build({"-t", "app:1"});
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  auto other = p.build({"-t", "other:1"});  // app:1 is then not the index's last entry
  REQUIRE_MESSAGE(other.exit_code == 0, other.err);
  auto snapshot = [&] {
    std::vector<std::string> out;
    for (const char* d : {"blobs/sha256", "cache/steps", "tmp", "snapshots"})
      for (auto& e : fs::directory_iterator(p.root / d)) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  };
  struct stat before {};
  REQUIRE(::stat((p.root / "index.json").c_str(), &before) == 0);
  auto files = snapshot();
  auto again = p.build({"-t", "app:1"});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(again.out == first.out);
  struct stat after {};
  REQUIRE(::stat((p.root / "index.json").c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  CHECK(snapshot() == files);
}

TEST_CASE("build: SOURCE_DATE_EPOCH makes two --no-cache builds identical") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("a.txt", "hello\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY a.txt /x/\nRUN mkdir /y && echo 1 > /y/z\n");
  auto a = p.build({"--no-cache", "-t", "r:1"}, {"SOURCE_DATE_EPOCH=1700000000"});
  auto b = p.build({"--no-cache", "-t", "r:2"}, {"SOURCE_DATE_EPOCH=1700000000"});
  REQUIRE_MESSAGE(a.exit_code == 0, a.err);
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  CHECK(a.out == b.out);
}

TEST_CASE("build: multi-stage with COPY --from a named stage, and --target") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile",
         "FROM " + p.base + " AS builder\n"
         "RUN mkdir /out && echo built > /out/artifact\n"
         "FROM scratch AS unused\n"
         "COPY --from=builder /nonexistent /\n"
         "FROM " + p.base + "\n"
         "COPY --from=builder /out/artifact /artifact\n");
  auto r = p.build({"-t", "ms:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  auto [config, fsroot] = p.image("docker.io/library/ms:1", work.path() / "ms/rootfs");
  CHECK(test::read_text(fsroot / "artifact") == "built\n");
  CHECK_FALSE(fs::exists(fsroot / "out"));

  auto t = p.build({"--target", "builder", "-t", "ms:builder"});
  REQUIRE_MESSAGE(t.exit_code == 0, t.err);
  auto [c2, f2] = p.image("docker.io/library/ms:builder", work.path() / "b/rootfs");
  CHECK(test::read_text(f2 / "out/artifact") == "built\n");
}

TEST_CASE("build: bad inputs give one clear message, exit 1, and leave no tag and no mount") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  auto store_tags = [&] { return oci::LayoutStore::open(p.root)->tags().size(); };
  std::size_t tags = store_tags();

  SUBCASE("no Dockerfile") {
    auto r = p.build({"-t", "x:1"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("cbuild: error: cannot read the Dockerfile") != std::string::npos);
  }
  SUBCASE("unknown instruction") {
    p.file("Dockerfile", "FROM " + p.base + "\nCOPPY a b\n");
    auto r = p.build({"-t", "x:1"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("Dockerfile:2:") != std::string::npos);
    CHECK(r.err.find("did you mean COPY?") != std::string::npos);
  }
  SUBCASE("a failing RUN") {
    p.file("Dockerfile", "FROM " + p.base + "\n\nRUN echo doomed && exit 3\n");
    auto r = p.build({"-t", "x:1"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("Dockerfile:3: RUN echo doomed && exit 3:") != std::string::npos);
    CHECK(r.err.find("exit code: 3") != std::string::npos);
  }
  SUBCASE("a missing COPY source") {
    p.file("Dockerfile", "FROM " + p.base + "\nCOPY missing.txt /\n");
    auto r = p.build({"-t", "x:1"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("Dockerfile:2: COPY missing.txt /: source \"missing.txt\" not found") != std::string::npos);
  }
  SUBCASE("an unknown base image") {
    p.file("Dockerfile", "FROM cbuild-no-such-image:1\n");
    auto r = p.build({"-t", "x:1"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("Dockerfile:1:") != std::string::npos);
    CHECK(r.err.find("cbuild-no-such-image:1") != std::string::npos);
  }
  CHECK(store_tags() == tags);
  CHECK_FALSE(test::has_mounts_under(p.root));
}

TEST_CASE("build: a base image missing from the store is pulled from its registry") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  test::RegistryServer registry;
  std::string remote = registry.host() + "/test/busybox:1";
  auto push = test::run_cbuild({"--root", p.root.string(), "push", "docker.io/library/" + p.base, remote});
  REQUIRE_MESSAGE(push.exit_code == 0, push.err);

  test::BuildProject fresh(test::base_for_test());
  fresh.file("Dockerfile", "FROM " + remote + "\nRUN echo pulled > /p\n");
  auto r = fresh.build({"-t", "pulled:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.find("pulling") != std::string::npos);
  TempDir work;
  auto [config, fsroot] = fresh.image("docker.io/library/pulled:1", work.path() / "p/rootfs");
  CHECK(test::read_text(fsroot / "p") == "pulled\n");

  registry.stop();
  fresh.file("Dockerfile", "FROM " + registry.host() + "/test/other:1\n");
  auto down = fresh.build({"-t", "x:1"});
  CHECK(down.exit_code == 1);
  CHECK(down.err.find("Dockerfile:1:") != std::string::npos);
  CHECK(down.err.find("test/other:1") != std::string::npos);
}

TEST_CASE("build: prune keeps the snapshots of tagged images and cache records, and removes the rest") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  // /big makes the layer's one frame large enough for the frame cache to record it.
  p.file("Dockerfile", "FROM " + p.base + "\nRUN echo 1 > /one && seq 1 100000 > /big\n");
  REQUIRE(p.build({"-t", "keep:1"}).exit_code == 0);
  auto frame_records = [&] {
    std::size_t n = 0;
    if (fs::exists(p.root / "cache" / "frames"))
      for (const auto& e : fs::directory_iterator(p.root / "cache" / "frames")) n += e.path().filename().string()[0] != '.';
    return n;
  };
  REQUIRE(frame_records() >= 1);
  std::size_t records_built = frame_records();
  auto snapshot_count = [&] {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(p.root / "snapshots"))
      if (e.path().filename().string()[0] != '.') ++n;
    return n;
  };
  std::size_t built = snapshot_count();
  CHECK(built == 2);  // the base layer and the RUN layer
  auto prune = test::run_cbuild({"--root", p.root.string(), "prune"});
  REQUIRE_MESSAGE(prune.exit_code == 0, prune.err);
  CHECK(snapshot_count() == built);
  CHECK(frame_records() == records_built);  // their layers are still stored

  REQUIRE(test::run_cbuild({"--root", p.root.string(), "rmi", "keep:1"}).exit_code == 0);
  REQUIRE(test::run_cbuild({"--root", p.root.string(), "rmi", "docker.io/library/" + p.base}).exit_code == 0);
  auto all = test::run_cbuild({"--root", p.root.string(), "prune", "--all"});
  REQUIRE_MESSAGE(all.exit_code == 0, all.err);
  CHECK(all.out.find("Deleted snapshots: 2") != std::string::npos);
  CHECK(snapshot_count() == 0);
  // The records of layers no longer stored go with them (gc keeps blobs younger than a minute,
  // so take one away by hand as a later gc would).
  for (const auto& e : fs::directory_iterator(p.root / "cache" / "frames"))
    CHECK(fs::exists(p.root / "blobs" / "sha256" / e.path().filename()));
  REQUIRE(frame_records() >= 1);
  std::size_t before = frame_records();
  fs::remove(p.root / "blobs" / "sha256" / fs::directory_iterator(p.root / "cache" / "frames")->path().filename());
  REQUIRE(test::run_cbuild({"--root", p.root.string(), "prune"}).exit_code == 0);
  CHECK(frame_records() == before - 1);
}

TEST_CASE("build: prune --all empties the whole build cache, COPY layer memos and file hashes included") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("data/a.txt", "alpha\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY data /data\n");
  // Memos and file hashes are recorded only for files changed 2 s or more before the build
  // (a rootless pass's chown changes them: it goes first).
  test::lend_to_test_user(p.dir.path());
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  REQUIRE(p.build({"-t", "memo:1"}).exit_code == 0);
  auto entries = [&](const fs::path& dir) {
    std::size_t n = 0;
    if (fs::exists(dir))
      for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string()[0] != '.';
    return n;
  };
  REQUIRE(entries(p.root / "cache" / "layers") >= 1);
  REQUIRE(fs::exists(p.root / "cache" / "contenthash"));
  auto plain = test::run_cbuild({"--root", p.root.string(), "prune"});
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
  CHECK(entries(p.root / "cache" / "layers") >= 1);  // plain prune keeps the build cache
  CHECK(fs::exists(p.root / "cache" / "contenthash"));
  auto all = test::run_cbuild({"--root", p.root.string(), "prune", "--all"});
  REQUIRE_MESSAGE(all.exit_code == 0, all.err);
  CHECK(entries(p.root / "cache" / "layers") == 0);
  CHECK(!fs::exists(p.root / "cache" / "contenthash"));
  CHECK(entries(p.root / "cache" / "steps") == 0);
  // The image is still there and a rebuild works from scratch.
  auto again = p.build({"-t", "memo:1"});
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(entries(p.root / "cache" / "layers") >= 1);
}

TEST_CASE("build: a COPY layer gets no snapshot; run, mount, unpack, RUN on top, outputs and cache hits apply it") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("data/a.txt", "alpha\n");
  p.file("data/sub/b.txt", "beta\n");
  p.file("Dockerfile", "FROM " + p.base + "\nWORKDIR /w\nCOPY data /data\n");
  auto b = p.build({"-t", "lazy:1"});
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  auto chains = [&] {
    auto store = oci::LayoutStore::open(p.root);
    auto m = oci::Manifest::parse(store->read_blob(store->resolve("docker.io/library/lazy:1")->digest));
    json config = json::parse(store->read_blob(m.config.digest));
    std::vector<oci::Digest> diff_ids;
    for (const auto& d : config["rootfs"]["diff_ids"]) diff_ids.push_back(oci::Digest::parse(d.get<std::string>()));
    return overlay::chain_ids(diff_ids);
  };
  auto has_snapshot = [&](const oci::Digest& c) { return fs::exists(p.root / "snapshots" / c.hex()); };
  std::vector<oci::Digest> c = chains();
  REQUIRE(c.size() == 3);
  CHECK(has_snapshot(c[0]));        // the base: WORKDIR resolved its path against it
  CHECK(has_snapshot(c[1]));        // WORKDIR's layer: applied for COPY's view of its parent
  CHECK_FALSE(has_snapshot(c[2]));  // COPY: streamed, never written to disk

  // A warm rebuild is all cache hits and still writes nothing; prune copes with the gap.
  auto warm = p.build({"-t", "lazy:1"});
  REQUIRE_MESSAGE(warm.exit_code == 0, warm.err);
  CHECK(warm.err.find("CACHED") != std::string::npos);
  CHECK_FALSE(has_snapshot(c[2]));
  auto prune = test::run_cbuild({"--root", p.root.string(), "prune"});
  REQUIRE_MESSAGE(prune.exit_code == 0, prune.err);

  // --output type=local reads the blobs.
  fs::path out = p.dir.path() / "out";
  auto local = p.build({"-o", "type=local,dest=" + out.string()});
  REQUIRE_MESSAGE(local.exit_code == 0, local.err);
  CHECK(test::read_text(out / "data/sub/b.txt") == "beta\n");
  CHECK(fs::is_directory(out / "w"));

  // cbuild run / mount / unpack materialize the missing snapshots from the blobs.
  auto r = test::run_cbuild({"--root", p.root.string(), "run", "--rm", "lazy:1", "sh", "-c", "cat /data/a.txt; pwd"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out == "alpha\n/w\n");
  CHECK(has_snapshot(c[2]));
  auto m = test::run_cbuild({"--root", p.root.string(), "mount", "lazy:1"});
  REQUIRE_MESSAGE(m.exit_code == 0, m.err);
  std::string target = m.out.substr(0, m.out.size() - 1);
  CHECK(test::read_text(fs::path(target) / "data/sub/b.txt") == "beta\n");
  CHECK(test::run_cbuild({"--root", p.root.string(), "umount", target}).exit_code == 0);
  fs::path bundle = p.dir.path() / "bundle";
  auto u = test::run_cbuild({"--root", p.root.string(), "unpack", "lazy:1", bundle.string(), "sh"});
  REQUIRE_MESSAGE(u.exit_code == 0, u.err);
  CHECK(test::read_text(bundle / "rootfs/data/a.txt") == "alpha\n");

  // RUN on top of a COPY-only image whose snapshots are gone (as on another machine).
  fs::remove_all(p.root / "snapshots");
  p.file("Dockerfile", "FROM lazy:1\nRUN cat /data/a.txt /data/sub/b.txt > /both\nCOPY data/a.txt /data/sub/\n"
                       "RUN cat /data/sub/a.txt >> /both\n");
  auto on_top = p.build({"-t", "lazy:2"});
  REQUIRE_MESSAGE(on_top.exit_code == 0, on_top.err);
  auto rr = test::run_cbuild({"--root", p.root.string(), "run", "--rm", "lazy:2", "cat", "/both"});
  CHECK(rr.out == "alpha\nbeta\nalpha\n");
}

TEST_CASE("build: a --no-cache COPY of settled files reuses the layer the store has; a same-size, same-mtime rewrite is copied") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("data/x", std::string(300000, 'x'));
  p.file("data/sub/y", "why\n");
  p.file("Dockerfile", "FROM " + p.base + "\nCOPY data /data\n");
  // Files changed in the last two seconds are never vouched for by their stat data.
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  auto top_layer = [&](const std::string& tag) {
    auto store = oci::LayoutStore::open(p.root);
    auto m = oci::Manifest::parse(store->read_blob(store->resolve("docker.io/library/" + tag)->digest));
    return m.layers.back();
  };
  auto a = p.build({"--no-cache", "-t", "memo:1"});
  REQUIRE_MESSAGE(a.exit_code == 0, a.err);
  auto b = p.build({"--no-cache", "-t", "memo:2"});
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  CHECK(b.err.find("CACHED") == std::string::npos);
  CHECK(b.err.find("reused, 0 compressed") != std::string::npos);
  CHECK(top_layer("memo:2") == top_layer("memo:1"));
  // Without the remembered hashes and layers the same layer is made from the files.
  fs::remove_all(p.root / "cache" / "layers");
  fs::remove(p.root / "cache" / "contenthash");
  auto c = p.build({"--no-cache", "-t", "memo:3"});
  REQUIRE_MESSAGE(c.exit_code == 0, c.err);
  CHECK(top_layer("memo:3") == top_layer("memo:1"));

  // Same size, mtime set back: only ctime shows the change, and the new bytes are copied.
  struct stat before {};
  REQUIRE(::stat((p.ctx / "data/x").c_str(), &before) == 0);
  p.file("data/x", std::string(300000, 'z'));
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, (p.ctx / "data/x").c_str(), times, 0) == 0);
  for (const char* tag : {"memo:4", "memo:5"}) {
    auto d = p.build({"--no-cache", "-t", tag});
    REQUIRE_MESSAGE(d.exit_code == 0, d.err);
    TempDir work;
    auto [config, fsroot] = p.image(std::string("docker.io/library/") + tag, work.path() / "r/rootfs");
    CHECK(test::read_text(fsroot / "data/x") == std::string(300000, 'z'));
  }
  CHECK(top_layer("memo:4") != top_layer("memo:1"));
  auto e = p.build({"-t", "memo:6"});  // and the step cache misses too
  REQUIRE_MESSAGE(e.exit_code == 0, e.err);
  CHECK(top_layer("memo:6") == top_layer("memo:4"));
}
