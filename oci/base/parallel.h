// run_parallel — runs fn(i) for every i in [0, n) on up to `jobs` threads (the calling thread
// is one of them). When a call throws, no new item is started, `stop` (if given) is set so
// running items can finish early, and after all threads are joined the first exception is
// rethrown. Workers see the caller's cancel scope (oci/base/cancel.h), so a build that cancels
// the stage pulling also stops the blob transfers. Used to move the blobs of one pull or push
// concurrently, and to hash a COPY's source files.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "oci/base/cancel.h"

namespace cbuild {

inline void run_parallel(std::size_t n, int jobs, const std::function<void(std::size_t)>& fn,
                         std::atomic<bool>* stop = nullptr) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex mu;
  const CancelScope* caller_scope = CancelScope::current();
  auto worker = [&] {
    CancelScope inherited(nullptr, caller_scope);
    while (!failed.load()) {
      std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard lk(mu);
        if (!first) first = std::current_exception();
        failed = true;
        if (stop) *stop = true;
      }
    }
  };
  std::size_t threads = std::min<std::size_t>(n, jobs < 1 ? 1 : static_cast<std::size_t>(jobs));
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace cbuild
