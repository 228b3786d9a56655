// Filesystem steps: mutate a mounted stack, get a layer and a snapshot (builder/steps/fs_step.h),
// and RUN output streaming (builder/steps/run_command.h).
#include "builder/steps/fs_step.h"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "builder/steps/run_command.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "overlay/sandbox.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/blob_map.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::builder;

namespace {

std::vector<std::string> entries_of(const test::BlobMap& store, const oci::Digest& d) {
  oci::TarReader r(store.open(d));
  std::vector<std::string> out;
  while (auto e = r.next()) out.push_back(e->path);
  return out;
}

struct Collect final : NullProgress {
  std::mutex mu;
  std::vector<std::string> lines;
  void step_output(const StepRef&, std::string_view l) override {
    std::lock_guard g(mu);
    lines.emplace_back(l);
  }
};

}  // namespace

TEST_CASE("run_fs_step: a mutation becomes a layer and the next snapshot; a failure leaves nothing") {
  REQUIRE_ROOT();
  TempDir root;
  test::BlobMap store;
  overlay::SnapshotStore snaps(root.path());
  FsContext ctx{.store = store, .snapshots = snaps, .layer_options = {}};

  FsStepResult a = run_fs_step(ctx, {}, [](const fs::path& m) {
    fs::create_directories(m / "app");
    std::ofstream(m / "app/x") << "one";
  });
  CHECK(entries_of(store, a.layer.descriptor.digest) == std::vector<std::string>{"app", "app/x"});
  CHECK(snaps.has(a.chain));
  LayerStack s1{{a.layer.descriptor}, {a.layer.diff_id}};

  FsStepResult b = run_fs_step(ctx, s1, [](const fs::path& m) {
    CHECK(test::read_text(m / "app/x") == "one");  // the lower is visible
    fs::remove(m / "app/x");
    std::ofstream(m / "y") << "two";
  });
  CHECK(entries_of(store, b.layer.descriptor.digest) == std::vector<std::string>{"app", "app/.wh.x", "y"});

  std::size_t blobs = store.size();
  CHECK_THROWS_AS(run_fs_step(ctx, s1, [](const fs::path&) { throw Error(ErrorKind::Internal, "boom"); }), Error);
  CHECK(store.size() == blobs);
  // Every mount a step makes lives under the store root (its scratch is $ROOT/tmp/proc-*);
  // other tests running beside this one mount under their own roots.
  CHECK_FALSE(test::has_mounts_under(root.path()));

  // A fresh snapshot store (another machine) rebuilds the lowers from the blobs.
  TempDir root2;
  overlay::SnapshotStore snaps2(root2.path());
  FsContext ctx2{.store = store, .snapshots = snaps2, .layer_options = {}};
  LayerStack s2{{a.layer.descriptor, b.layer.descriptor}, {a.layer.diff_id, b.layer.diff_id}};
  with_view(ctx2, s2, [](const fs::path& v) {
    CHECK(test::read_text(v / "y") == "two");
    CHECK_FALSE(fs::exists(v / "app/x"));
  });
}

TEST_CASE("run_with_output streams lines and keeps the tail; exit codes pass through") {
  REQUIRE_ROOT();
  TempDir root;
  test::make_busybox_rootfs(root.path() / "rootfs");
  Collect progress;
  overlay::RunSpec spec;
  spec.rootfs = root.path() / "rootfs";
  spec.argv = {"/bin/sh", "-c", "for i in $(seq 1 30); do echo line$i; done; echo err >&2; exit 3"};
  RunOutcome out = run_with_output(spec, progress, StepRef{});
  CHECK(out.status.code == 3);
  CHECK(progress.lines.size() == 31);
  CHECK(out.tail.size() == 20);
  CHECK(out.tail.back() == "err");
  CHECK(out.tail.front() == "line12");
}

TEST_CASE("run_fs_step and with_view survive a prune racing for their lower snapshots") {
  REQUIRE_ROOT();
  TempDir root;
  test::BlobMap store;
  overlay::SnapshotStore snaps(root.path());
  FsContext ctx{.store = store, .snapshots = snaps, .layer_options = {}};
  FsStepResult a = run_fs_step(ctx, {}, [](const fs::path& m) { std::ofstream(m / "base") << "b"; });
  LayerStack s1{{a.layer.descriptor}, {a.layer.diff_id}};
  // Prunes that keep nothing, one after another as `cbuild prune` runs would (a pass, then a
  // moment): every snapshot no step holds locked goes, also in the window between making a
  // lower snapshot and locking it.
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> pruned{0};
  std::thread pruner([&] {
    while (!stop) {
      pruned += snaps.prune({});
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::size_t failures = 0;
  std::string first;
  for (int i = 0; i < 150; ++i) {
    try {
      run_fs_step(ctx, s1, [](const fs::path& m) { CHECK(test::read_text(m / "base") == "b"); });
      with_view(ctx, s1, [](const fs::path& v) { CHECK(test::read_text(v / "base") == "b"); });
    } catch (const Error& e) {
      if (first.empty()) first = e.what();
      ++failures;
    }
  }
  stop = true;
  pruner.join();
  CHECK_MESSAGE(failures == 0, failures << " of 150 rounds failed, first: " << first);
  CHECK(pruned > 0);
  CHECK_FALSE(test::has_mounts_under(root.path()));
}
