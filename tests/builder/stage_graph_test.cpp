// run_graph (builder/plan/stage_graph.h): dependencies first, `order` preferred, independent nodes
// at the same time, the first failure cancels the rest and is the one rethrown.
#include "builder/plan/stage_graph.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>

#include "oci/base/cancel.h"
#include "oci/base/error.h"

using namespace cbuild;
using namespace cbuild::builder;
using namespace std::chrono_literals;

TEST_CASE("stage graph: jobs=1 runs serially in dependency order, preferring the given order") {
  // 0 needs 2, 1 needs nothing, 2 needs nothing, 3 needs 0 and 1.
  std::vector<std::vector<int>> needs{{2}, {}, {}, {0, 1}};
  std::vector<int> ran;
  run_graph({3, 0, 1, 2}, needs, 1, [&](int i) { ran.push_back(i); });
  CHECK(ran == std::vector<int>{1, 2, 0, 3});
}

TEST_CASE("stage graph: independent nodes run at the same time, dependents after both") {
  std::vector<std::vector<int>> needs{{}, {}, {0, 1}};
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  bool met = true;
  std::atomic<bool> last_after{false};
  std::atomic<int> finished{0};
  run_graph({0, 1, 2}, needs, 2, [&](int i) {
    if (i == 2) {
      last_after = finished == 2;
      return;
    }
    // A rendezvous only two concurrent nodes can pass; the timeout turns a serial run into a
    // failure instead of a hang.
    std::unique_lock lock(mu);
    ++arrived;
    cv.notify_all();
    if (!cv.wait_for(lock, 10s, [&] { return arrived == 2; })) met = false;
    ++finished;
  });
  CHECK(met);
  CHECK(last_after);
}

TEST_CASE("stage graph: the first failure cancels running nodes, starts no others, and is rethrown") {
  std::vector<std::vector<int>> needs{{}, {}, {0, 1}};
  std::atomic<bool> saw_cancel{false}, dependent_ran{false};
  std::string what;
  try {
    run_graph({0, 1, 2}, needs, 2, [&](int i) {
      if (i == 0) {
        // Runs until cancelled, as a RUN in the sandbox would (bounded, so a bug cannot hang).
        auto until = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < until) {
          if (cancel_requested()) {
            saw_cancel = true;
            check_cancelled();
          }
          std::this_thread::sleep_for(5ms);
        }
        return;
      }
      if (i == 1) {
        std::this_thread::sleep_for(50ms);
        throw Error(ErrorKind::FailedPrecondition, "Dockerfile:4: RUN false: exit code: 1");
      }
      dependent_ran = true;
    });
  } catch (const Error& e) {
    what = e.what();
  }
  CHECK(what == "Dockerfile:4: RUN false: exit code: 1");
  CHECK(saw_cancel);
  CHECK_FALSE(dependent_ran);
  CHECK_FALSE(cancel_requested());  // the build's own cancel never touches the caller's thread
  CHECK_FALSE(interrupted());
}

TEST_CASE("stage graph: a cycle or an unknown stage is an internal error, not a hang") {
  auto kind = [](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::Unavailable;
  };
  CHECK(kind([] { run_graph({0, 1}, {{1}, {0}}, 2, [](int) {}); }) == ErrorKind::Internal);
  CHECK(kind([] { run_graph({0}, {{5}}, 2, [](int) {}); }) == ErrorKind::Internal);
}

TEST_CASE("stage graph: stage_needs lists FROM, COPY --from and RUN --mount from stages") {
  ExecStage s;
  s.base = ExecStage::Base::Stage;
  s.base_stage = 2;
  s.steps.push_back(ExecStep{.op = CopyOp{.from = CopyOp::From::Stage, .stage = 0}});
  s.steps.push_back(ExecStep{.op = CopyOp{.from = CopyOp::From::Context}});
  RunOp run;
  run.mounts.push_back(RunMount{.from_stage = 1});
  s.steps.push_back(ExecStep{.op = run});
  s.steps.push_back(ExecStep{.op = CopyOp{.from = CopyOp::From::Stage, .stage = 2}});
  CHECK(stage_needs(s) == std::vector<int>{0, 1, 2});
}
