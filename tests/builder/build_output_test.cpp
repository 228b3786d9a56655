// `cbuild build --output …` and `--push` through the real binary: every export is read back by
// another tool (skopeo, umoci, docker load, cbuild load/pull, a real registry) rather than by the
// code that wrote it.
#include <doctest/doctest.h>

#include <sys/mount.h>
#include <sys/stat.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/sinks.h"
#include "tests/overlay/overlay_test_util.h"
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

namespace {

constexpr const char* kBase = "cbuild-test-busybox:1";

// The project with `Dockerfile` = "FROM base\n" + body, and a --metadata-file for each build
// (the manifest digest and what was pushed).
struct OutputProject : test::BuildProject {
  fs::path meta_file = dir.path() / "metadata.json";

  explicit OutputProject(const std::string& body) : BuildProject(kBase) {
    file("Dockerfile", std::string("FROM ") + kBase + "\n" + body);
  }
  test::CommandResult build(const std::vector<std::string>& extra, const std::string& input = {}) const {
    fs::remove(meta_file);
    std::vector<std::string> args{"build", "--progress=plain", "--metadata-file", meta_file.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(ctx.string());
    return cbuild(args, input);
  }
  json meta() const { return json::parse(read_file(meta_file)); }
  std::string manifest_digest() const { return meta()["containerimage.digest"].get<std::string>(); }
  // The image's layers from the store, flattened by the test helper into `where`.
  fs::path flatten(const std::string& manifest_digest, const fs::path& where) const {
    return tree_of(manifest_of(oci::Digest::parse(manifest_digest)), where);
  }
};

// Creates files of every kind, then deletes some in a later RUN, so the last layer carries
// whiteouts (a file, a directory, a file of the base image) that a local export must apply.
const char* kTreeSteps =
    "RUN mkdir -p /out/sub && echo data > /out/f && chown 12:34 /out/f && chmod 0640 /out/f"
    " && ln -s ../etc/passwd /out/sub/link && ln /out/f /out/hard && chmod 0750 /out/sub"
    " && echo doomed > /out/gone && mkdir /out/gonedir && echo y > /out/gonedir/y\n"
    "RUN rm -r /out/gone /out/gonedir /etc/group\n";

void check_tree(const fs::path& r) {
  struct stat st {};
  REQUIRE(::lstat((r / "out/f").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_uid == 12);
  CHECK(st.st_gid == 34);
  CHECK(test::read_text(r / "out/f") == "data\n");
  struct stat hard {};
  REQUIRE(::lstat((r / "out/hard").c_str(), &hard) == 0);
  CHECK(hard.st_ino == st.st_ino);
  REQUIRE(::lstat((r / "out/sub").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0750);
  CHECK(fs::is_symlink(r / "out/sub/link"));
  CHECK(fs::read_symlink(r / "out/sub/link") == "../etc/passwd");
  CHECK(fs::is_regular_file(r / "bin/busybox"));
  CHECK(fs::exists(r / "etc/passwd"));
  CHECK_FALSE(test::exists_nofollow(r / "out/gone"));
  CHECK_FALSE(test::exists_nofollow(r / "out/gonedir"));
  CHECK_FALSE(test::exists_nofollow(r / "etc/group"));
}

// Every entry of a directory, for "nothing was left behind" checks.
std::vector<std::string> names_in(const fs::path& d) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(d)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A tmpfs of `kb` KiB at `dir`, unmounted on destruction: a disk that fills up mid-export, or
// (read_only) one nothing can be written to, even by root.
struct SmallDisk {
  fs::path dir;
  SmallDisk(const fs::path& d, int kb, bool read_only = false) : dir(d) {
    fs::create_directories(dir);
    std::string opts = "size=" + std::to_string(kb) + "k";
    REQUIRE(::mount("tmpfs", dir.c_str(), "tmpfs", read_only ? MS_RDONLY : 0, opts.c_str()) == 0);
  }
  ~SmallDisk() { ::umount2(dir.c_str(), MNT_DETACH); }
};

}  // namespace

TEST_CASE("build --output type=oci: an OCI archive skopeo inspects and cbuild load reads; no store tag") {
  REQUIRE_ROOT();
  OutputProject p("ENV X=1\nRUN echo run-output-line && echo hi > /hi\n");
  fs::path archive = p.dir.path() / "exports/app.tar";  // the parent is created
  auto r = p.build({"-t", "app:1", "-o", "type=oci,dest=" + archive.string()});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.rfind("sha256:", 0) == 0);
  std::string digest = p.manifest_digest();
  // buildx semantics: an --output replaces the default image output.
  CHECK_FALSE(p.tag("docker.io/library/app:1"));
  CHECK(names_in(archive.parent_path()) == std::vector<std::string>{"app.tar"});

  auto sk = test::run_command({"skopeo", "inspect", "oci-archive:" + archive.string()});
  REQUIRE_MESSAGE(sk.exit_code == 0, sk.err);
  json info = json::parse(sk.out);
  CHECK(info["Digest"] == digest);
  CHECK(info["Layers"].size() == 2);
  auto raw = test::run_command({"skopeo", "inspect", "--config", "oci-archive:" + archive.string()});
  REQUIRE_MESSAGE(raw.exit_code == 0, raw.err);
  CHECK(json::parse(raw.out)["config"]["Env"].dump().find("X=1") != std::string::npos);

  TempDir fresh;
  auto load = test::run_cbuild({"--root", (fresh.path() / "s").string(), "load", "-i", archive.string()});
  REQUIRE_MESSAGE(load.exit_code == 0, load.err);
  CHECK(load.out == "Loaded image: app:1\n");
  auto back = oci::LayoutStore::open(fresh.path() / "s")->resolve("docker.io/library/app:1");
  REQUIRE(back);
  CHECK(back->digest.str() == digest);

  {  // with type=image too, the store is tagged as well
    auto both = p.build({"-t", "app:2", "-o", "type=image", "-o", "type=oci,dest=" + archive.string()});
    REQUIRE_MESSAGE(both.exit_code == 0, both.err);
    REQUIRE(p.tag("docker.io/library/app:2"));
    CHECK(p.tag("docker.io/library/app:2")->digest.str() == p.manifest_digest());
  }
  {  // without -t the archive holds one unnamed image; dest=- streams it and prints no ID
    // --no-cache: the RUN prints while the build's stdout is the archive; it must go to stderr.
    auto s = p.build({"--no-cache", "-o", "type=oci,dest=-"});
    REQUIRE_MESSAGE(s.exit_code == 0, s.err);
    CHECK(s.out.find("sha256:") != 0);
    // (The config's history holds the command text, so look for the printed line itself.)
    CHECK(s.out.find("run-output-line\n") == std::string::npos);
    CHECK(s.err.find("run-output-line\n") != std::string::npos);
    fs::path streamed = p.dir.path() / "streamed.tar";
    write_file_atomic(streamed, s.out);
    auto si = test::run_command({"skopeo", "inspect", "oci-archive:" + streamed.string()});
    REQUIRE_MESSAGE(si.exit_code == 0, si.err);
    CHECK(json::parse(si.out)["Digest"] == p.manifest_digest());
    auto l = test::run_cbuild({"--root", (fresh.path() / "s2").string(), "load"}, s.out);
    REQUIRE_MESSAGE(l.exit_code == 0, l.err);
    CHECK(l.out == "Loaded image ID: " + p.meta()["containerimage.config.digest"].get<std::string>() + "\n");
  }
}

TEST_CASE("build --output type=oci,tar=false and type=local: read by skopeo and umoci, same tree as the image") {
  REQUIRE_ROOT();
  OutputProject p(kTreeSteps);
  fs::path layout = p.dir.path() / "layout", local = p.dir.path() / "local";
  auto r = p.build({"-t", "tree:1", "-o", "type=oci,dest=" + layout.string() + ",tar=false", "-o",
                    "type=local,dest=" + local.string(), "-o", "type=image"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::string digest = p.manifest_digest();
  REQUIRE(p.tag("docker.io/library/tree:1"));

  auto sk = test::run_command({"skopeo", "inspect", "oci:" + layout.string() + ":1"});
  REQUIRE_MESSAGE(sk.exit_code == 0, sk.err);
  CHECK(json::parse(sk.out)["Digest"] == digest);
  auto ls = test::run_command({"umoci", "ls", "--layout", layout.string()});
  REQUIRE_MESSAGE(ls.exit_code == 0, ls.err);
  CHECK(ls.out == "1\n");
  // No staging directory is left next to the outputs (tmp is the project's TMPDIR for cbuild).
  CHECK(names_in(p.dir.path()) == std::vector<std::string>{"ctx", "layout", "local", "metadata.json", "store", "tmp"});
  CHECK(names_in(p.tmp).empty());

  check_tree(local);
  TempDir work;
  fs::path flat = p.flatten(digest, work.path() / "flat/rootfs");
  std::string diff = test::listing_diff(test::tree_listing(flat), test::tree_listing(local));
  CHECK_MESSAGE(diff.empty(), "image (-) vs type=local (+):\n" << diff);
  // umoci is an independent unpacker of the OCI layout cbuild wrote.
  auto un = test::run_command({"umoci", "unpack", "--image", layout.string() + ":1", (work.path() / "bundle").string()});
  REQUIRE_MESSAGE(un.exit_code == 0, un.err);
  diff = test::listing_diff(test::tree_listing(work.path() / "bundle/rootfs"), test::tree_listing(local));
  CHECK_MESSAGE(diff.empty(), "umoci (-) vs type=local (+):\n" << diff);

  {  // -o DIR into an existing directory merges: the user's files stay, the image's replace
    fs::path into = p.dir.path() / "into";
    test::write_text(into / "mine.txt", "keep\n");
    test::write_text(into / "out/f", "old\n");
    fs::create_directories(into / "out/hard");  // a directory where the image has a file
    fs::create_directories(p.dir.path() / "elsewhere");
    fs::create_symlink(p.dir.path() / "elsewhere", into / "out/sub");  // never followed: replaced
    auto m = p.build({"-o", into.string()});
    REQUIRE_MESSAGE(m.exit_code == 0, m.err);
    CHECK(test::read_text(into / "mine.txt") == "keep\n");
    check_tree(into);
    CHECK(names_in(p.dir.path() / "elsewhere").empty());
    for (const auto& n : names_in(into)) CHECK(n.find("cbuild") == std::string::npos);
  }
  {  // -o - streams the tree as a tar on stdout
    auto t = p.build({"-o", "-"});
    REQUIRE_MESSAGE(t.exit_code == 0, t.err);
    CHECK(t.out.find("sha256:") != 0);
    fs::path tar = work.path() / "tree.tar";
    write_file_atomic(tar, t.out);
    test::flatten_layers({tar}, work.path() / "from-tar");
    check_tree(work.path() / "from-tar");
    diff = test::listing_diff(test::tree_listing(flat), test::tree_listing(work.path() / "from-tar"));
    CHECK_MESSAGE(diff.empty(), "image (-) vs -o - (+):\n" << diff);
  }
}

TEST_CASE("build --output type=docker: docker load accepts it with the same image ID") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  OutputProject p("RUN echo to-docker > /d\nCMD [\"cat\", \"/d\"]\n");
  fs::path archive = p.dir.path() / "docker.tar";
  auto r = p.build({"-t", "cbuild-output-test:1", "-o", "type=docker,dest=" + archive.string()});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::string id = r.out.substr(0, r.out.find('\n'));
  auto l = docker->docker({"load", "-i", archive.string()});
  REQUIRE_MESSAGE(l.exit_code == 0, l.err);
  CHECK(l.out.find("cbuild-output-test:1") != std::string::npos);
  auto i = docker->docker({"image", "inspect", "--format", "{{.Id}} {{json .Config.Cmd}}", "cbuild-output-test:1"});
  REQUIRE_MESSAGE(i.exit_code == 0, i.err);
  CHECK(i.out == id + " [\"cat\",\"/d\"]\n");
  docker->docker({"rmi", "cbuild-output-test:1"});

  // The same through stdout, into docker load's stdin.
  auto s = p.build({"-t", "cbuild-output-test:2", "-o", "type=docker,dest=-"});
  REQUIRE_MESSAGE(s.exit_code == 0, s.err);
  auto l2 = docker->docker({"load"}, s.out);
  REQUIRE_MESSAGE(l2.exit_code == 0, l2.err);
  auto i2 = docker->docker({"image", "inspect", "--format", "{{.Id}}", "cbuild-output-test:2"});
  CHECK(i2.out == id + "\n");
  docker->docker({"rmi", "cbuild-output-test:2"});
}

TEST_CASE("build --push and type=registry: pushed to a real registry, pulled back with the same digest") {
  REQUIRE_ROOT();
  OutputProject p("RUN echo pushed > /p\n");
  test::RegistryServer registry;
  std::string ref = registry.host() + "/test/app:1";
  auto r = p.build({"-t", ref, "--push"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::string digest = p.manifest_digest();
  CHECK(r.err.find("pushed " + ref + "@" + digest) != std::string::npos);
  CHECK(p.meta()["image.name"] == ref);
  CHECK(p.meta()["cbuild.pushed"][0]["digest"] == digest);
  REQUIRE(p.tag(ref));  // --push is type=image,push=true: the store is tagged too
  CHECK(p.tag(ref)->digest.str() == digest);

  TempDir fresh;
  auto pull = test::run_cbuild({"--root", (fresh.path() / "s").string(), "pull", ref});
  REQUIRE_MESSAGE(pull.exit_code == 0, pull.err);
  CHECK(pull.out == digest + "\n");

  std::string other = registry.host() + "/test/other:2";
  auto o = p.build({"-o", "type=registry,name=" + other});
  REQUIRE_MESSAGE(o.exit_code == 0, o.err);
  CHECK(p.manifest_digest() == digest);
  auto pull2 = test::run_cbuild({"--root", (fresh.path() / "s2").string(), "pull", other});
  REQUIRE_MESSAGE(pull2.exit_code == 0, pull2.err);
  CHECK(pull2.out == digest + "\n");

  registry.stop();
  auto down = p.build({"-t", registry.host() + "/test/app:2", "--push"});
  CHECK(down.exit_code == 1);
  CHECK(down.err.find("cbuild: error: push " + registry.host() + "/test/app:2: ") != std::string::npos);
  CHECK(down.out.empty());
}

TEST_CASE("build --output errors: one clear line, exit 1, nothing half-written") {
  REQUIRE_ROOT();
  OutputProject p("RUN echo x > /x\n");
  auto last_error_line = [](const std::string& err) {
    auto pos = err.rfind("cbuild: error: ");
    return pos == std::string::npos ? std::string() : err.substr(pos);
  };
  fs::path file = p.dir.path() / "a-file";
  test::write_text(file, "not a directory\n");

  SUBCASE("an unknown type") {
    auto r = p.build({"-o", "type=zip,dest=x"});
    CHECK(r.exit_code == 1);
    CHECK(last_error_line(r.err) == "cbuild: error: --output: unknown type \"zip\" (expected oci, docker, local, registry or image)\n");
  }
  SUBCASE("a dest below a regular file") {
    auto r = p.build({"-o", "type=oci,dest=" + (file / "app.tar").string()});
    CHECK(r.exit_code == 1);
    CHECK(last_error_line(r.err).find("cbuild: error: --output type=oci,dest=" + (file / "app.tar").string() + ": ") == 0);
    auto l = p.build({"-o", "type=local,dest=" + (file / "dir").string()});
    CHECK(l.exit_code == 1);
    CHECK(last_error_line(l.err).find("cbuild: error: --output type=local,dest=" + (file / "dir").string() + ": ") == 0);
  }
  SUBCASE("a read-only dest, for each kind of output") {
    SmallDisk ro(p.dir.path() / "ro", 64, true);
    for (std::string spec : {"type=oci,dest=" + (ro.dir / "a.tar").string(), "type=docker,dest=" + (ro.dir / "a.tar").string(),
                             "type=oci,tar=false,dest=" + (ro.dir / "layout").string(),
                             "type=local,dest=" + (ro.dir / "tree").string(), "type=local,dest=" + ro.dir.string()}) {
      auto r = p.build({"-o", spec});
      CHECK(r.exit_code == 1);
      std::string line = last_error_line(r.err);
      CHECK_MESSAGE(line.find("cbuild: error: --output ") == 0, line);
      CHECK_MESSAGE(line.find("Read-only file system") != std::string::npos, line);
      CHECK(r.err.find("cbuild: error: ") == r.err.rfind("cbuild: error: "));  // one line
    }
  }
  SUBCASE("a tar dest that is a directory, a local dest that is a file (refused before building)") {
    auto r = p.build({"-o", "type=oci,dest=" + p.dir.path().string()});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("is a directory (add tar=false") != std::string::npos);
    CHECK(r.err.find("RUN echo") == std::string::npos);
    auto l = p.build({"-o", file.string()});
    CHECK(l.exit_code == 1);
    CHECK(l.err.find("exists and is not a directory") != std::string::npos);
  }
  SUBCASE("--push without a name, and two outputs on stdout") {
    auto r = p.build({"--push"});
    CHECK(r.exit_code == 1);
    CHECK(last_error_line(r.err) == "cbuild: error: --push: no name to push to (give -t NAME or --output type=registry,name=NAME)\n");
    auto s = p.build({"-o", "-", "-o", "type=oci,dest=-"});
    CHECK(s.exit_code == 1);
    CHECK(s.err.find("only one output can write to stdout") != std::string::npos);
  }
  SUBCASE("a disk that fills up mid-export leaves no file and no staging directory") {
    SmallDisk disk(p.dir.path() / "small", 128);  // the busybox layer alone is larger
    auto r = p.build({"-o", "type=oci,dest=" + (disk.dir / "app.tar").string()});
    CHECK(r.exit_code == 1);
    CHECK(last_error_line(r.err).find("cbuild: error: --output type=oci,dest=") == 0);
    CHECK(names_in(disk.dir).empty());
    auto l = p.build({"-o", "type=local,dest=" + (disk.dir / "tree").string()});
    CHECK(l.exit_code == 1);
    CHECK(last_error_line(l.err).find("cbuild: error: --output type=local,dest=") == 0);
    CHECK(names_in(disk.dir).empty());
    auto d = p.build({"-o", "type=oci,tar=false,dest=" + (disk.dir / "layout").string()});
    CHECK(d.exit_code == 1);
    CHECK(names_in(disk.dir).empty());
  }
  CHECK_FALSE(test::has_mounts_under(p.root));
}
