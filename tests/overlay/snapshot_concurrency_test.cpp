// SnapshotStore used by parallel build stages: threads creating the same chain at once — from a
// layer (two stages on one base) or by committing an upper (two stages with the same step) —
// all succeed, exactly one creates it, and no staging dir is left.
#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "overlay/snapshot_store.h"
#include "tests/overlay/layer_test_util.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using cbuild::TempDir;
using cbuild::oci::Digest;
using namespace cbuild::overlay;
using namespace cbuild::test;

namespace {
// Runs fn(i) on `n` threads released together.
template <class Fn>
void together(int n, Fn fn) {
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      fn(i);
    });
  go = true;
  for (auto& t : threads) t.join();
}
}  // namespace

TEST_CASE("snapshot_store: threads ensuring the same chain at once make it once") {
  REQUIRE_ROOT();  // applying a layer sets owners
  TempDir tmp;
  SnapshotStore store(tmp.path() / "store");
  Digest chain = Digest::of("base");
  std::atomic<int> created{0}, failed{0};
  together(6, [&](int) {
    try {
      auto r = reader_for(make_tar({dir_item("etc"), file_item("etc/os", "base")}));
      if (store.ensure(chain, std::nullopt, *r)) ++created;
    } catch (...) {
      ++failed;
    }
  });
  CHECK(failed == 0);
  CHECK(created == 1);
  CHECK(cbuild::read_file(store.fs_dir(chain) / "etc/os") == "base");
  CHECK(fs::is_empty(tmp.path() / "store/snapshots/.tmp"));
}

TEST_CASE("snapshot_store: threads committing uppers of the same chain at once: one wins, the rest reuse it") {
  REQUIRE_ROOT();
  TempDir tmp;
  SnapshotStore store(tmp.path() / "store");
  Digest base = Digest::of("base");
  auto r = reader_for(make_tar({file_item("a", "1")}));
  REQUIRE(store.ensure(base, std::nullopt, *r));
  Digest step = chain_id(base, Digest::of("step"));
  std::atomic<int> created{0}, failed{0};
  together(6, [&](int i) {
    try {
      PreparedSnapshot p = store.prepare(base);
      cbuild::write_file_atomic(p.upper() / "b", "same");
      cbuild::write_file_atomic(p.upper() / ("only-" + std::to_string(i)), "x");
      if (store.commit(p, step)) ++created;
    } catch (...) {
      ++failed;
    }
  });
  CHECK(failed == 0);
  CHECK(created == 1);
  CHECK(cbuild::read_file(store.fs_dir(step) / "b") == "same");
  CHECK(fs::is_empty(tmp.path() / "store/snapshots/.tmp"));
}
