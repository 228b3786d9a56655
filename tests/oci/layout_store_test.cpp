#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/image_config.h"
#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "tests/support/root.h"
#include "tests/support/small_tmpfs.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using namespace cbuild::oci;
namespace fs = std::filesystem;

namespace {

ErrorKind kind_of(auto fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::Internal;  // "did not throw" is never expected below
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

// A one-layer image written through the store's API: returns the manifest descriptor.
Descriptor make_image(LayoutStore& store, const fs::path& scratch, const std::string& text) {
  fs::create_directories(scratch / "tree" / "etc");
  std::ofstream(scratch / "tree" / "etc" / "hello.txt") << text;
  LayerResult layer = write_layer(scratch / "tree", store);
  ImageConfig cfg;
  cfg.architecture = "amd64";
  cfg.os = "linux";
  cfg.created = rfc3339_utc(1700000000);
  cfg.config.env = {"PATH=/usr/bin:/bin"};
  cfg.config.cmd = std::vector<std::string>{"/bin/sh"};
  cfg.rootfs.diff_ids = {layer.diff_id};
  cfg.history = {History{.created = cfg.created, .created_by = "test layer"}};
  std::string cfg_json = cfg.to_json();
  Manifest m;
  m.media_type = std::string(media_types::kOciManifest);
  m.config = Descriptor{.media_type = std::string(media_types::kOciConfig), .digest = store.put_blob(cfg_json),
                        .size = static_cast<std::int64_t>(cfg_json.size())};
  m.layers = {layer.descriptor};
  std::string mj = m.to_json();
  return Descriptor{.media_type = std::string(media_types::kOciManifest), .digest = store.put_blob(mj),
                    .size = static_cast<std::int64_t>(mj.size())};
}

void flip_byte(const fs::path& p, off_t at) {
  int fd = ::open(p.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  char c;
  REQUIRE(::pread(fd, &c, 1, at) == 1);
  c ^= 0x01;
  REQUIRE(::pwrite(fd, &c, 1, at) == 1);
  ::close(fd);
}

}  // namespace

TEST_CASE("open creates a layout, reopens it, and refuses what is not one") {
  TempDir t;
  auto root = t.path() / "store";
  auto s = LayoutStore::open(root);
  CHECK(fs::is_regular_file(root / "oci-layout"));
  CHECK(fs::is_regular_file(root / "index.json"));
  CHECK(fs::is_directory(root / "blobs" / "sha256"));
  CHECK(Index::parse(read_file(root / "index.json")).manifests.empty());
  CHECK(nlohmann::json::parse(read_file(root / "oci-layout"))["imageLayoutVersion"] == "1.0.0");
  CHECK_NOTHROW(LayoutStore::open(root));

  fs::create_directories(t.path() / "other");
  std::ofstream(t.path() / "other" / "notes.txt") << "x";
  try {
    LayoutStore::open(t.path() / "other");
    FAIL("opened a non-OCI directory");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::FailedPrecondition);
    CHECK(std::string(e.what()).find("not an OCI image layout") != std::string::npos);
  }
  CHECK(!fs::exists(t.path() / "other" / "index.json"));  // left untouched
  CHECK(kind_of([&] { LayoutStore::open(t.path() / "other" / "notes.txt"); }) == ErrorKind::FailedPrecondition);
  fs::create_directories(t.path() / "empty");
  CHECK_NOTHROW(LayoutStore::open(t.path() / "empty"));
  // Only cbuild's own state dirs (made by another component first) count as empty.
  fs::create_directories(t.path() / "early" / "snapshots");
  fs::create_directories(t.path() / "early" / "cache" / "steps");
  CHECK_NOTHROW(LayoutStore::open(t.path() / "early"));
  CHECK(fs::exists(t.path() / "early" / "oci-layout"));
  fs::create_directories(t.path() / "bad");
  std::ofstream(t.path() / "bad" / "oci-layout") << R"({"imageLayoutVersion":"9"})";
  CHECK(kind_of([&] { LayoutStore::open(t.path() / "bad"); }) == ErrorKind::FailedPrecondition);
}

TEST_CASE("ingest is a transaction and reads are verified") {
  TempDir t;
  auto s = LayoutStore::open(t.path());
  Digest d = s->put_blob("hello");
  CHECK(d == Digest::of("hello"));
  CHECK(s->stat(d) == 5);
  CHECK(s->read_blob(d) == "hello");
  CHECK(s->put_blob("hello") == d);  // existing blob is fine
  CHECK(!s->stat(Digest::of("nope")));
  CHECK(kind_of([&] { s->open(Digest::of("nope")); }) == ErrorKind::NotFound);

  {  // abandoned ingest leaves nothing
    auto ing = s->begin_ingest();
    ing->write(std::string(3 << 20, 'x'));
    CHECK(count_files(t.path() / "tmp") == 1);
  }
  CHECK(count_files(t.path() / "tmp") == 0);
  {  // wrong expectation → DataLoss, no blob, no temp file
    auto ing = s->begin_ingest();
    ing->write("abc");
    CHECK(kind_of([&] { ing->commit(Digest::of("abd")); }) == ErrorKind::DataLoss);
    auto ing2 = s->begin_ingest();
    ing2->write("abc");
    CHECK(kind_of([&] { ing2->commit(std::nullopt, 4); }) == ErrorKind::DataLoss);
  }
  CHECK(!s->stat(Digest::of("abc")));
  CHECK(count_files(t.path() / "tmp") == 0);

  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 13);
  Digest bd = s->put_blob(big);
  flip_byte(s->blob_path(bd), 1000);
  CHECK(kind_of([&] { s->read_blob(bd, 2 << 20); }) == ErrorKind::DataLoss);
  fs::resize_file(s->blob_path(bd), 1000);
  CHECK(kind_of([&] { s->read_blob(bd, 2 << 20); }) == ErrorKind::DataLoss);
  // A good copy re-ingested replaces nothing (the blob exists); removing the bad one heals.
  fs::remove(s->blob_path(bd));
  CHECK(s->put_blob(big) == bd);
  CHECK(s->read_blob(bd, 2 << 20) == big);
}

TEST_CASE("tags are full references in index.json; foreign entries are kept") {
  TempDir t;
  auto s = LayoutStore::open(t.path() / "s");
  Descriptor img = make_image(*s, t.path() / "scratch", "one");
  CHECK(kind_of([&] {
          s->set_tag("docker.io/library/x:1", Descriptor{.media_type = "application/vnd.oci.image.manifest.v1+json",
                                                         .digest = Digest::of("missing"), .size = 7});
        }) == ErrorKind::NotFound);
  // Another tool's untagged entry with extra fields survives our rewrites byte for byte.
  auto idx = nlohmann::json::parse(read_file(t.path() / "s" / "index.json"));
  nlohmann::json foreign = {{"mediaType", img.media_type}, {"digest", img.digest.str()}, {"size", img.size},
                            {"annotations", {{"vendor.x", "y"}}}};
  idx["manifests"].push_back(foreign);
  idx["annotations"] = {{"keep", "me"}};
  write_file_atomic(t.path() / "s" / "index.json", idx.dump());

  s->set_tag("docker.io/library/b:1", img);
  s->set_tag("docker.io/library/a:1", img);
  s->set_tag("docker.io/library/b:1", img);  // replacing, not duplicating
  auto tags = s->tags();
  REQUIRE(tags.size() == 2);
  CHECK(tags[0].first == "docker.io/library/a:1");
  CHECK(tags[1].first == "docker.io/library/b:1");
  auto r = s->resolve("docker.io/library/a:1");
  REQUIRE(r);
  CHECK(r->digest == img.digest);
  CHECK(r->annotations.at(kRefNameAnnotation) == "docker.io/library/a:1");
  CHECK(!s->resolve("a:1"));
  CHECK(s->remove_tag("docker.io/library/a:1"));
  CHECK(!s->remove_tag("docker.io/library/a:1"));
  auto after = nlohmann::json::parse(read_file(t.path() / "s" / "index.json"));
  CHECK(after["annotations"]["keep"] == "me");
  CHECK(after["manifests"][0] == foreign);
  CHECK(s->index_entries().size() == 2);
  // No symlinks anywhere in the store.
  for (auto& e : fs::recursive_directory_iterator(t.path() / "s")) CHECK(!e.is_symlink());
}

TEST_CASE("re-tagging the same manifest and re-putting stored bytes write nothing") {
  TempDir t;
  auto s = LayoutStore::open(t.path() / "s");
  Descriptor one = make_image(*s, t.path() / "scratch1", "one");
  Descriptor two = make_image(*s, t.path() / "scratch2", "two");
  s->set_tag("docker.io/library/a:1", one);
  s->set_tag("docker.io/library/b:1", two);
  fs::path index = t.path() / "s" / "index.json";
  struct stat before {};
  REQUIRE(::stat(index.c_str(), &before) == 0);
  std::string bytes = read_file(index);
  // Not the last entry: a no-op must not reorder (and so rewrite) the index either.
  s->set_tag("docker.io/library/a:1", one);
  s->set_tags({{"docker.io/library/a:1", one}, {"docker.io/library/b:1", two}});
  s->add_entry(one);
  struct stat after {};
  REQUIRE(::stat(index.c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  CHECK(read_file(index) == bytes);
  // A real change still rewrites it.
  s->set_tag("docker.io/library/a:1", two);
  CHECK(s->resolve("docker.io/library/a:1")->digest == two.digest);

  // put_blob of bytes already stored keeps the blob file (same inode) and no temp file.
  Digest d = s->put_blob("same bytes");
  fs::path blob = s->blob_path(d);
  struct stat b1 {};
  REQUIRE(::stat(blob.c_str(), &b1) == 0);
  CHECK(s->put_blob("same bytes") == d);
  struct stat b2 {};
  REQUIRE(::stat(blob.c_str(), &b2) == 0);
  CHECK(b2.st_ino == b1.st_ino);
  CHECK(count_files(t.path() / "s" / "tmp") == 0);
  // A stored file of the wrong size (damaged) is replaced by the good bytes.
  { std::ofstream(blob, std::ios::trunc) << "x"; }
  CHECK(s->put_blob("same bytes") == d);
  CHECK(s->read_blob(d) == "same bytes");
}

TEST_CASE("two processes tagging at once both win; a killed tagger never tears index.json") {
  TempDir t;
  auto s = LayoutStore::open(t.path());
  Descriptor img = make_image(*s, t.path() / "scratch", "x");
  std::vector<pid_t> kids;
  for (int k = 0; k < 2; ++k) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int rc = 0;
      try {
        auto child = LayoutStore::open(t.path());
        for (int i = 0; i < 25; ++i) child->set_tag("docker.io/library/p" + std::to_string(k) + ":" + std::to_string(i), img);
      } catch (...) {
        rc = 1;
      }
      ::_exit(rc);
    }
    kids.push_back(pid);
  }
  for (pid_t p : kids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  }
  CHECK(s->tags().size() == 50);

  // Kill a tagger at an arbitrary moment: index.json stays a valid index with old or new tags.
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto child = LayoutStore::open(t.path());
    for (int i = 0;; ++i) child->set_tag("docker.io/library/k:" + std::to_string(i % 7), img);
  }
  ::usleep(150000);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  CHECK_NOTHROW(Index::parse(read_file(t.path() / "index.json")));
  CHECK(s->tags().size() >= 50);
  // Kill a writer mid-ingest: no blob appears, and gc cleans the dead temp file.
  pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto child = LayoutStore::open(t.path());
    auto ing = child->begin_ingest();
    for (;;) ing->write(std::string(1 << 16, 'k'));
  }
  ::usleep(100000);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  CHECK(count_files(t.path() / "tmp") == 1);
  auto live = s->begin_ingest();  // a live ingest is never collected
  live->write("live");
  GcResult g = s->gc(GcOptions{.grace = std::chrono::seconds(0)});
  CHECK(g.temp_files_removed == 1);
  CHECK(count_files(t.path() / "tmp") == 1);
  CHECK(live->commit() == Digest::of("live"));
  CHECK(count_files(t.path() / "tmp") == 0);
}

TEST_CASE("gc keeps what tags, extra roots and live leases reach") {
  TempDir t;
  auto s = LayoutStore::open(t.path() / "s");
  Descriptor tagged = make_image(*s, t.path() / "a", "tagged");
  Descriptor untagged = make_image(*s, t.path() / "b", "untagged");
  Descriptor rooted = make_image(*s, t.path() / "c", "rooted");
  s->set_tag("docker.io/library/t:1", tagged);
  Digest leased = s->put_blob("leased");
  Digest loose = s->put_blob("loose");
  auto lease = s->acquire_lease("build");
  CHECK(lease->add(leased));
  // A stale lease of a dead process names `loose`, which must go anyway.
  std::ofstream(t.path() / "s" / "leases" / "dead-1-0") << loose.str() << "\n";

  auto reach_tagged = s->reachable({tagged.digest});
  CHECK(reach_tagged.size() == 3);  // manifest, config, layer

  GcOptions opts{.extra_roots = {rooted.digest}, .grace = std::chrono::seconds(0), .dry_run = true};
  GcResult dry = s->gc(opts);
  CHECK(dry.removed.size() == 3 + 1);  // untagged image's 3 blobs + loose
  CHECK(s->stat(untagged.digest));     // dry run removes nothing
  opts.dry_run = false;
  GcResult g = s->gc(opts);
  CHECK(g.removed.size() == 4);
  CHECK(g.stale_leases_removed == 1);
  CHECK(!s->stat(untagged.digest));
  CHECK(!s->stat(loose));
  CHECK(s->stat(leased));
  for (auto& d : s->reachable({tagged.digest, rooted.digest})) CHECK(s->stat(d));
  // With the grace period, fresh unreferenced blobs stay.
  Digest fresh = s->put_blob("fresh");
  CHECK(s->gc().removed.empty());
  CHECK(s->stat(fresh));
  // Blobs committed while a default lease is set are protected by it.
  s->set_default_lease(lease);
  Digest built = s->put_blob("built");
  s->set_default_lease(nullptr);
  CHECK(s->gc(GcOptions{.grace = std::chrono::seconds(0)}).removed.size() == 4);  // `fresh` and the no-longer-rooted image
  CHECK(s->stat(built));
  lease.reset();
  CHECK(s->gc(GcOptions{.grace = std::chrono::seconds(0)}).removed.size() == 2);  // leased, built
}

TEST_CASE("a full disk gives ResourceExhausted and no torn files") {
  REQUIRE_ROOT();
  test::SmallTmpfs disk("256k");
  const fs::path& mnt = disk.path();
  auto s = LayoutStore::open(mnt);
  Digest small = s->put_blob("small");
  s->set_tag("docker.io/library/s:1", Descriptor{.media_type = std::string(media_types::kOciConfig), .digest = small, .size = 5});
  std::string index_before = read_file(mnt / "index.json");
  try {
    s->put_blob(std::string(1 << 20, 'f'));
    FAIL("no error on a full disk");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::ResourceExhausted);
  }
  CHECK(count_files(mnt / "tmp") == 0);
  CHECK(count_files(mnt / "blobs" / "sha256") == 1);
  // Fill the disk, then tag: index.json is the old one, whole.
  {
    std::ofstream fill(mnt / "filler");
    std::string chunk(4096, 'z');
    while (fill.write(chunk.data(), chunk.size())) {}
  }
  try {
    for (int i = 0; i < 200; ++i) s->set_tag("docker.io/library/many:" + std::to_string(i), s->tags()[0].second);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::ResourceExhausted);
  }
  CHECK_NOTHROW(Index::parse(read_file(mnt / "index.json")));
  CHECK(s->read_blob(small) == "small");
}

TEST_CASE("skopeo and umoci read what the store wrote") {
  TempDir t;
  auto root = t.path() / "store";
  auto s = LayoutStore::open(root);
  Descriptor img = make_image(*s, t.path() / "scratch", "hello from cbuild\n");
  s->set_tag("docker.io/library/demo:1", img);
  auto r = test::run_command({"skopeo", "inspect", "--raw", "oci:" + root.string() + ":docker.io/library/demo:1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(Digest::of(r.out) == img.digest);
  r = test::run_command({"skopeo", "inspect", "oci:" + root.string() + ":docker.io/library/demo:1"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("\"Architecture\": \"amd64\"") != std::string::npos);

  // umoci unpack without --rootless needs root.
  if (::geteuid() != 0) {
    if (test::in_ci()) FAIL("umoci unpack needs root, and CI runs as root");
    MESSAGE("skipped: umoci unpack needs root");
    return;
  }
  r = test::run_command({"umoci", "unpack", "--image", root.string() + ":docker.io/library/demo:1", (t.path() / "bundle").string()});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(read_file(t.path() / "bundle" / "rootfs" / "etc" / "hello.txt") == "hello from cbuild\n");
}

TEST_CASE("a blob the store lacks is fetched by open() through the blob fetcher; stat stays honest") {
  TempDir t;
  auto store = LayoutStore::open(t.path() / "store");
  const std::string bytes = "layer bytes held elsewhere";
  const Digest d = Digest::of(bytes);
  int calls = 0;
  store->set_blob_fetcher([&](const Digest& want) {
    ++calls;
    if (want != d) return false;  // knows no origin for anything else
    auto in = store->begin_ingest();
    in->write(std::as_bytes(std::span(bytes.data(), bytes.size())));
    in->commit(d, static_cast<std::int64_t>(bytes.size()));
    return true;
  });
  CHECK(!store->stat(d));
  CHECK(calls == 0);
  CHECK(store->read_blob(d) == bytes);
  CHECK(calls == 1);
  CHECK(store->stat(d) == static_cast<std::int64_t>(bytes.size()));
  CHECK(store->read_blob(d) == bytes);
  CHECK(calls == 1);  // present now: no second fetch
  // No origin: absent as without a fetcher.
  CHECK(kind_of([&] { store->open(Digest::of("nowhere")); }) == ErrorKind::NotFound);
  // A fetcher that fails: its error, as it says it.
  store->set_blob_fetcher([](const Digest& want) -> bool {
    throw Error(ErrorKind::Unavailable, "blob " + want.str() + ": registry r.example/x is down");
  });
  try {
    store->open(Digest::of("elsewhere"));
    FAIL("open did not throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Unavailable);
    CHECK(std::string(e.what()).find("r.example/x is down") != std::string::npos);
  }
}
