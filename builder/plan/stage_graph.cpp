#include "builder/plan/stage_graph.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "oci/base/cancel.h"
#include "oci/base/error.h"

namespace cbuild::builder {

std::vector<int> stage_needs(const ExecStage& stage) {
  std::set<int> out;
  if (stage.base == ExecStage::Base::Stage) out.insert(stage.base_stage);
  for (const auto& step : stage.steps) {
    if (const auto* c = std::get_if<CopyOp>(&step.op); c && c->from == CopyOp::From::Stage) out.insert(c->stage);
    if (const auto* r = std::get_if<RunOp>(&step.op))
      for (const auto& m : r->mounts)
        if (m.from_stage >= 0) out.insert(m.from_stage);
  }
  return {out.begin(), out.end()};
}

int default_jobs() {
  unsigned n = std::thread::hardware_concurrency();
  return std::max(2, static_cast<int>(n));
}

void run_graph(const std::vector<int>& order, const std::vector<std::vector<int>>& needs, int jobs,
               const std::function<void(int)>& run) {
  // Positions in `order` stand for the nodes from here on: the ready set then sorts by them.
  std::map<int, std::size_t> pos;
  for (std::size_t k = 0; k < order.size(); ++k) pos.emplace(order[k], k);
  const std::size_t n = order.size();
  std::vector<int> waiting_on(n, 0);
  std::vector<std::vector<std::size_t>> dependents(n);
  for (std::size_t k = 0; k < n; ++k) {
    auto i = static_cast<std::size_t>(order[k]);
    if (i >= needs.size()) continue;
    for (int d : needs[i]) {
      auto it = pos.find(d);
      if (it == pos.end())
        throw Error(ErrorKind::Internal, "stage " + std::to_string(order[k]) + " needs stage " + std::to_string(d) +
                                             ", which is not scheduled");
      ++waiting_on[k];
      dependents[it->second].push_back(k);
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  std::set<std::size_t> ready;
  for (std::size_t k = 0; k < n; ++k)
    if (waiting_on[k] == 0) ready.insert(k);
  std::size_t finished = 0, running = 0;
  std::exception_ptr first;
  CancelSource stop;
  const CancelScope* caller_scope = CancelScope::current();

  auto worker = [&] {
    CancelScope scope(&stop, caller_scope);
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return first || finished == n || !ready.empty() || running == 0; });
      if (first || finished == n) return;
      if (ready.empty()) {  // nothing runs and nothing can start: the needs form a cycle
        first = std::make_exception_ptr(Error(ErrorKind::Internal, "the stages depend on each other in a cycle"));
        cv.notify_all();
        return;
      }
      std::size_t k = *ready.begin();
      ready.erase(ready.begin());
      ++running;
      lock.unlock();
      std::exception_ptr failed;
      try {
        run(order[k]);
      } catch (...) {
        failed = std::current_exception();
      }
      lock.lock();
      --running;
      if (failed) {
        // Record and stop under the lock: a stage cancelled because of this failure can only
        // report after it, so its "cancelled" never hides the real error.
        if (!first) first = failed;
        stop.request();
      } else {
        ++finished;
        for (std::size_t d : dependents[k])
          if (--waiting_on[d] == 0) ready.insert(d);
      }
      cv.notify_all();
    }
  };

  std::size_t threads = std::min<std::size_t>(n, static_cast<std::size_t>(std::max(1, jobs)));
  std::vector<std::thread> pool;
  try {
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  } catch (...) {
    // No thread to spare: the ones started and this one still finish the graph.
  }
  worker();
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace cbuild::builder
