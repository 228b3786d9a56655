// The streamed COPY layer (builder/steps/layer_tree.h, fs_step.h run_streamed_step) against the
// on-disk path it replaces (run_fs_step: overlay mount, CopyStep::write, diff): for the same
// parent and sources both must give the same layer, byte for byte.
#include "builder/steps/layer_tree.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>

#include "builder/steps/copy_step.h"
#include "builder/cache/frame_cache.h"
#include "builder/steps/fs_step.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/tar_reader.h"
#include "tests/support/blob_map.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::builder;

namespace {

// Everything older than this keeps its time; "now" (dirs an entry is created in) clamps to it,
// so both paths give comparable bytes.
constexpr std::int64_t kEpoch = 1'000'000'000;

void put(const fs::path& p, const std::string& content, mode_t mode, std::int64_t mtime) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << content;
  ::chmod(p.c_str(), mode);
  struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
  ::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

void touch(const fs::path& p, std::int64_t mtime) {
  struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
  ::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

std::vector<std::string> listing(const test::BlobMap& store, const oci::Digest& d) {
  oci::TarReader r(store.open(d));
  std::vector<std::string> out;
  while (auto e = r.next())
    out.push_back(e->path + " " + std::to_string(static_cast<int>(e->type)) + " " + std::to_string(e->mode) + " " +
                  std::to_string(e->uid) + ":" + std::to_string(e->gid) + " " + std::to_string(e->mtime_sec) + " " +
                  std::to_string(e->size) + " " + e->link_target + " x" + std::to_string(e->xattrs.size()));
  return out;
}

struct Fixture {
  TempDir root;
  TempDir context;
  test::BlobMap store;
  overlay::SnapshotStore snaps{root.path()};
  FsContext ctx{.store = store, .snapshots = snaps, .layer_options = {}};
  LayerStack base;

  Fixture() {
    ctx.layer_options.clamp_mtime = kEpoch;
    // The parent: passwd/group for --chown names, an existing directory with its own owner,
    // mode and xattr, a symlink to it, a file a directory will replace, nested dirs.
    FsStepResult b = run_fs_step(ctx, {}, [](const fs::path& m) {
      put(m / "etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n", 0644, 100);
      put(m / "etc/group", "root:x:0:\napp:x:1001:\n", 0644, 100);
      fs::create_directories(m / "srv/sub");
      ::chown((m / "srv").c_str(), 5, 6);
      ::chmod((m / "srv").c_str(), 0750);
      ::setxattr((m / "srv").c_str(), "user.kept", "1", 1, 0);  // may be unsupported: fine
      put(m / "srv/old", "old", 0644, 200);
      fs::create_symlink("/srv", m / "link");
      fs::create_symlink("nowhere/deeper", m / "dangling");
      put(m / "replace", "file", 0644, 300);
      fs::create_directories(m / "opt/a/b");
      touch(m / "opt/a/b", 400);
      touch(m / "opt/a", 400);
      touch(m / "opt", 400);
      touch(m / "srv/sub", 500);
      touch(m / "srv", 500);
    });
    base = LayerStack{{b.layer.descriptor}, {b.layer.diff_id}};

    const fs::path c = context.path();
    put(c / "top.txt", "top", 0644, 1000);
    put(c / "tree/a.txt", "a", 0755, 2000);
    put(c / "tree/secret", "s", 0600, 3000);
    put(c / "tree/suid", "x", 04755, 4000);
    put(c / "tree/nested/deep/leaf", "leaf", 0640, 5000);
    fs::create_directories(c / "tree/empty");
    fs::create_symlink("a.txt", c / "tree/rel-link");
    fs::create_symlink("/etc/passwd", c / "tree/abs-link");
    fs::create_hard_link(c / "tree/a.txt", c / "tree/hard");
    ::mkfifo((c / "tree/fifo").c_str(), 0644);
    put(c / "tree/skip.log", "log", 0644, 6000);
    for (const char* d : {"tree/nested/deep", "tree/nested", "tree/empty", "tree"}) touch(c / d, 7000);
    ::lchown((c / "tree/rel-link").c_str(), 0, 0);
  }

  // The layer both ways; CHECKs they agree and returns the listing.
  std::vector<std::string> both(const CopyOp& op, std::string dest, bool keep_owner = false) {
    UniqueFd src = open_file(context.path(), O_RDONLY | O_DIRECTORY);
    CopyStep old_step(op, dest, src.get(), CopyStepOptions{.keep_owner = keep_owner});
    FsStepResult old_r = run_fs_step(ctx, base, [&](const fs::path& merged) { old_step.write(merged); });
    CopyStep new_step(op, dest, src.get(), CopyStepOptions{.keep_owner = keep_owner});
    new_step.key_inputs();  // as the stage runner does: write(tree) may reuse the key's plan
    std::size_t snapshots = snaps.list().size();
    FsStepResult new_r =
        run_streamed_step(ctx, base, [&](LayerTree& tree, const fs::path& view) { new_step.write(tree, view); });
    CHECK(snaps.list().size() == snapshots);  // no snapshot for the streamed layer
    auto want = listing(store, old_r.layer.descriptor.digest);
    auto got = listing(store, new_r.layer.descriptor.digest);
    CHECK(got == want);
    CHECK(new_r.layer.diff_id == old_r.layer.diff_id);
    CHECK(new_r.layer.descriptor.digest == old_r.layer.descriptor.digest);
    CHECK(new_r.chain == old_r.chain);
    return got;
  }
};

}  // namespace

TEST_CASE("streamed COPY layer: same digest as mount-and-diff for a varied context") {
  REQUIRE_ROOT();
  Fixture f;
  SUBCASE("a directory into a new path") {
    auto l = f.both(CopyOp{.sources = {"tree"}, .dest = "/dest/"}, "/dest/");
    CHECK(l.size() > 10);
  }
  SUBCASE("into an existing directory, --chown by name, --chmod") {
    auto l = f.both(CopyOp{.sources = {"tree", "top.txt"}, .dest = "/srv/", .chown = "app"}, "/srv/");
    REQUIRE(!l.empty());
    // A directory source over an existing directory: it keeps its owner and mode (as docker's
    // fsutil copy does) and the lower's xattr (where the filesystem has user xattrs).
    CHECK(l[0].rfind("srv 1 488 5:6 ", 0) == 0);
    f.both(CopyOp{.sources = {"tree"}, .dest = "/srv", .chown = "app:app", .chmod = 0640}, "/srv");
  }
  SUBCASE("through a symlink in the destination, and a dangling one") {
    f.both(CopyOp{.sources = {"tree"}, .dest = "/link/x/"}, "/link/x/");
    f.both(CopyOp{.sources = {"top.txt"}, .dest = "/link"}, "/link");
    f.both(CopyOp{.sources = {"top.txt"}, .dest = "/dangling/f"}, "/dangling/f");
    // The destination itself a link: followed, the last component too (a dangling one to
    // where it leads), and hardlinked sources stay linked either way.
    auto l = f.both(CopyOp{.sources = {"tree"}, .dest = "/link"}, "/link");
    CHECK(std::find_if(l.begin(), l.end(), [](const std::string& e) { return e.rfind("srv/hard 3 ", 0) == 0; }) != l.end());
    f.both(CopyOp{.sources = {"top.txt"}, .dest = "/dangling"}, "/dangling");
  }
  SUBCASE("a directory onto a file fails both ways; a file replaces a file, deep existing parents") {
    UniqueFd src = open_file(f.context.path(), O_RDONLY | O_DIRECTORY);
    CopyOp op{.sources = {"tree"}, .dest = "/replace"};
    CopyStep on_disk(op, "/replace", src.get(), {});
    CHECK_THROWS_WITH_AS(run_fs_step(f.ctx, f.base, [&](const fs::path& m) { on_disk.write(m); }),
                         doctest::Contains("onto the non-directory \"/replace\""), Error);
    CopyStep streamed(op, "/replace", src.get(), {});
    CHECK_THROWS_WITH_AS(run_streamed_step(f.ctx, f.base, [&](LayerTree& t, const fs::path& v) { streamed.write(t, v); }),
                         doctest::Contains("onto the non-directory \"/replace\""), Error);
    f.both(CopyOp{.sources = {"top.txt"}, .dest = "/srv/old"}, "/srv/old");
    f.both(CopyOp{.sources = {"top.txt"}, .dest = "/opt/a/b/c/top"}, "/opt/a/b/c/top");
  }
  SUBCASE("--parents, --exclude, keep owners, wildcards") {
    f.both(CopyOp{.sources = {"tree/./nested/**"}, .dest = "/opt/", .parents = true}, "/opt/");
    f.both(CopyOp{.sources = {"tree"}, .dest = "/opt/", .excludes = {"*.log", "nested"}}, "/opt/");
    f.both(CopyOp{.sources = {"tree"}, .dest = "/x/"}, "/x/", /*keep_owner=*/true);
    f.both(CopyOp{.sources = {"tree/*.txt", "top*"}, .dest = "/srv/sub/"}, "/srv/sub/");
  }
  SUBCASE("errors are the same") {
    UniqueFd src = open_file(f.context.path(), O_RDONLY | O_DIRECTORY);
    // Several sources need a destination ending in "/"; an unknown --chown name fails.
    CopyOp bad{.sources = {"top.txt", "tree"}, .dest = "/srv/sub"};
    CopyStep b(bad, "/srv/sub", src.get(), {});
    CHECK_THROWS_AS(run_streamed_step(f.ctx, f.base, [&](LayerTree& t, const fs::path& v) { b.write(t, v); }), Error);
    CopyOp unknown{.sources = {"top.txt"}, .dest = "/y", .chown = "nobody"};
    CopyStep u(unknown, "/y", src.get(), {});
    CHECK_THROWS_AS(run_streamed_step(f.ctx, f.base, [&](LayerTree& t, const fs::path& v) { u.write(t, v); }), Error);
  }
}

TEST_CASE("streamed WORKDIR-style mkdir: new directories owned, existing ones kept") {
  REQUIRE_ROOT();
  Fixture f;
  FsStepResult r = run_streamed_step(f.ctx, f.base, [](LayerTree& t, const fs::path&) { t.mkdir_owned("/srv/sub/w/x", 7, 8); });
  auto l = listing(f.store, r.layer.descriptor.digest);
  REQUIRE(l.size() == 4);
  CHECK(l[0].rfind("srv 1 488 5:6 ", 0) == 0);  // copied up: owner and mode of the lower
  CHECK(l[2].rfind("srv/sub/w 1 493 7:8 ", 0) == 0);
  LayerTree none(-1);
  none.mkdir_owned("/a", 0, 0);
  CHECK(none.is_dir("/a"));
  CHECK_FALSE(none.is_dir("/b"));
}

TEST_CASE("streamed COPY: vouched-for file hashes key the frames; a file changed after its hash fails the step") {
  REQUIRE_ROOT();
  Fixture f;
  const fs::path big = f.context.path() / "big.bin";
  std::string content(3u << 20, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 2654435761u) >> 13);
  put(big, content, 0644, 1000);
  // Every entry counts as settled, so the hashes the COPY's key takes are trusted for its frames.
  ContentHashes hashes(f.root.path() / "contenthash", std::numeric_limits<std::int64_t>::max());
  StoreFrameCache frames(f.root.path(), oci::encoder_id(oci::Codec::Gzip, oci::default_level(oci::Codec::Gzip)));
  f.ctx.content_hashes = &hashes;
  f.ctx.frame_cache = &frames;
  UniqueFd src = open_file(f.context.path(), O_RDONLY | O_DIRECTORY);
  CopyOp op{.sources = {"big.bin"}, .dest = "/big.bin"};
  std::vector<oci::FrameRecord> seen;

  SUBCASE("unchanged: refs keys, and the same layer as without them") {
    CopyStep step(op, "/big.bin", src.get(), CopyStepOptions{.hashes = &hashes});
    step.key_inputs();  // hashes the file, as the stage runner does for the cache key
    FsStepResult with = run_streamed_step(f.ctx, f.base, [&](LayerTree& t, const fs::path& v) { step.write(t, v); });
    FsContext plain_ctx = f.ctx;
    plain_ctx.content_hashes = nullptr;
    plain_ctx.frame_cache = nullptr;
    CopyStep again(op, "/big.bin", src.get(), {});
    FsStepResult without = run_streamed_step(plain_ctx, f.base, [&](LayerTree& t, const fs::path& v) { again.write(t, v); });
    CHECK(with.layer.descriptor.digest == without.layer.descriptor.digest);
    CHECK(with.layer.diff_id == without.layer.diff_id);
    // The frames holding the file's data carry the refs form; record_layer kept them.
    auto records = read_file(f.root.path() / "cache" / "frames" / with.layer.descriptor.digest.hex());
    CHECK(records.find(" refs:") != std::string::npos);
  }
  SUBCASE("changed between hashing and reading: FailedPrecondition naming the file") {
    CopyStep step(op, "/big.bin", src.get(), CopyStepOptions{.hashes = &hashes});
    step.key_inputs();
    try {
      run_streamed_step(f.ctx, f.base, [&](LayerTree& t, const fs::path& v) {
        step.write(t, v);
        std::ofstream(big, std::ios::app) << "more";  // after the plan took its stat data
      });
      FAIL("no error for a file that changed while it was copied");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::FailedPrecondition);
      CHECK(std::string(e.what()).find("big.bin") != std::string::npos);
    }
  }
}
