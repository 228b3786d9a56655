#include "overlay/snapshot_store.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/active_mount.h"
#include "overlay/whiteout.h"
#include "tests/overlay/layer_test_util.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using cbuild::Error;
using cbuild::TempDir;
using cbuild::oci::Digest;
using namespace cbuild::overlay;
using namespace cbuild::test;

TEST_CASE("snapshot_store: chain IDs follow the OCI image spec") {
  Digest a = Digest::of("a"), b = Digest::of("b"), c = Digest::of("c");
  auto ids = chain_ids({a, b, c});
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] == a);
  CHECK(ids[1] == Digest::of(a.str() + " " + b.str()));
  CHECK(ids[2] == Digest::of(ids[1].str() + " " + c.str()));
  CHECK(chain_id(std::nullopt, b) == b);
  CHECK(chain_ids({}).empty());
}

TEST_CASE("snapshot_store: ensure, prepare, commit by rename, view, prune [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path root = tmp.path() / "store";
  SnapshotStore store(root);
  Digest d1 = Digest::of("layer1"), d2 = Digest::of("layer2");
  auto ids = chain_ids({d1, d2});

  auto r1 = reader_for(make_tar({dir_item("etc"), file_item("etc/os", "base"), file_item("etc/gone", "x")}));
  CHECK(store.ensure(ids[0], std::nullopt, *r1));
  auto again = reader_for(make_tar({file_item("other", "y")}));
  CHECK_FALSE(store.ensure(ids[0], std::nullopt, *again));  // exists: not re-extracted
  CHECK_FALSE(exists_nofollow(store.fs_dir(ids[0]) / "other"));
  auto r2 = reader_for(make_tar({file_item("etc/.wh.gone", ""), file_item("app", "v1")}));
  CHECK(store.ensure(ids[1], ids[0], *r2));
  CHECK(store.lowers(ids[1]) == std::vector<std::string>{store.fs_dir(ids[1]).string(), store.fs_dir(ids[0]).string()});
  CHECK_THROWS_AS(store.lowers(Digest::of("nope")), Error);
  // A failed apply leaves no snapshot and no staging behind.
  auto bad = reader_for(make_tar({file_item("a/..", "x")}));
  CHECK_THROWS_AS(store.ensure(Digest::of("bad"), std::nullopt, *bad), Error);
  CHECK_FALSE(store.has(Digest::of("bad")));
  CHECK(fs::is_empty(root / "snapshots/.tmp"));

  // A step: prepare on top of ids[1], change things, commit the upper as a new snapshot.
  Digest step = chain_id(ids[1], Digest::of("step"));
  {
    PreparedSnapshot p = store.prepare(ids[1]);
    {
      ActiveMount m(p.mount_spec(), tmp.path() / "merged");
      CHECK(read_text(m.target() / "etc/os") == "base");
      CHECK_FALSE(fs::exists(m.target() / "etc/gone"));
      write_text(m.target() / "etc/os", "changed");
      fs::create_directories(m.target() / "proc");  // a mount-point stub
    }
    fs::path upper = p.upper();
    DiffOptions strip;
    strip.exclude = {"proc"};
    CHECK(store.commit(p, step, strip));
    CHECK_FALSE(fs::exists(upper));  // renamed, not copied
  }
  CHECK(store.has(step));
  CHECK(read_text(store.fs_dir(step) / "etc/os") == "changed");
  CHECK_FALSE(exists_nofollow(store.fs_dir(step) / "proc"));
  CHECK(store.lowers(step).size() == 3);
  {
    PreparedSnapshot v = store.view(step);
    ActiveMount m(v.mount_spec(), tmp.path() / "view");
    CHECK(read_text(m.target() / "etc/os") == "changed");
    CHECK(read_text(m.target() / "app") == "v1");
    CHECK_FALSE(fs::exists(m.target() / "etc/gone"));
    // Mounted: prune must not take it, even when unreferenced.
    CHECK(store.prune({}) == 0);
  }
  CHECK_FALSE(has_mounts_under(tmp.path()));
  CHECK(fs::is_empty(root / "snapshots/.tmp"));

  // Relocatable: no symlinks in the store, and a copy works as a store.
  for (const auto& e : fs::recursive_directory_iterator(root / "snapshots"))
    CHECK_FALSE(fs::is_symlink(e.symlink_status()));
  std::string cmd = "cp -a '" + root.string() + "' '" + (tmp.path() / "copy").string() + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  SnapshotStore copy(tmp.path() / "copy");
  CHECK(copy.lowers(step).front() == copy.fs_dir(step).string());
  CHECK(copy.list().size() == 3);

  // Prune keeps what is referenced, removes the rest.
  CHECK(store.prune({ids[0], ids[1]}) == 1);
  CHECK_FALSE(store.has(step));
  CHECK(store.has(ids[1]));
  CHECK(store.prune({}) == 2);
  CHECK(store.list().empty());
}

TEST_CASE("snapshot_store: FROM scratch prepare and commit [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  SnapshotStore store(tmp.path());
  Digest c = Digest::of("scratch-step");
  PreparedSnapshot p = store.prepare(std::nullopt);
  {
    ActiveMount m(p.mount_spec(), tmp.path() / "m");
    write_text(m.target() / "hello", "world");
  }
  CHECK(store.commit(p, c));
  CHECK(read_text(store.fs_dir(c) / "hello") == "world");
  CHECK(store.lowers(c).size() == 1);
  PreparedSnapshot v = store.view(c);
  CHECK_THROWS_AS(store.commit(v, Digest::of("x")), Error);
}

TEST_CASE("snapshot_store: pinned views outlive their process and survive prune [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  SnapshotStore store(tmp.path());
  auto ids = chain_ids({Digest::of("p1"), Digest::of("p2")});
  auto r1 = reader_for(make_tar({file_item("a", "1")}));
  store.ensure(ids[0], std::nullopt, *r1);
  auto r2 = reader_for(make_tar({file_item("b", "2")}));
  store.ensure(ids[1], ids[0], *r2);
  CHECK_THROWS_AS(store.pin(ids[1], "../x"), Error);
  SnapshotStore::Pin p = store.pin(ids[1], "img1");
  fs::path target;
  {
    ActiveMount m(p.spec, p.target);
    target = m.release();
  }
  CHECK(has_mounts_under(tmp.path()));  // released: still mounted
  CHECK(read_text(target / "a") == "1");
  CHECK(store.pinned("img1") == ids[1]);
  CHECK(store.pins() == std::vector<std::string>{"img1"});
  CHECK(store.prune({}) == 0);  // the pinned stack stays
  CHECK(ActiveMount::unmount_path(target));
  CHECK_FALSE(ActiveMount::unmount_path(target));
  store.unpin("img1");
  CHECK_FALSE(has_mounts_under(tmp.path()));
  CHECK(store.pins().empty());
  CHECK(store.prune({}) == 2);
}
