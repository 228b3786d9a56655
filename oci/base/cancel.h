// Cancellation. Two sources stop work that checks for it:
//  - the process-wide flag: the CLI's SIGINT/SIGTERM handlers call request_cancel() (Ctrl-C);
//  - a CancelSource for one operation (a build whose first failing stage stops the others),
//    seen by the threads that entered it with a CancelScope.
// Long loops, curl progress callbacks and waits call check_cancelled() / cancel_requested(),
// which report either. Setting the process-wide flag is async-signal-safe.
#pragma once

#include <atomic>

namespace cbuild {

std::atomic<int>& cancel_signal() noexcept;  // 0 while running; the signal number once cancelled

inline void request_cancel(int signo = 2) noexcept { cancel_signal().store(signo, std::memory_order_relaxed); }
// True once a signal asked the whole process to stop (Ctrl-C), whatever scope is entered.
inline bool interrupted() noexcept { return cancel_signal().load(std::memory_order_relaxed) != 0; }

// A cancel request for one operation. request() is thread-safe and idempotent; it never
// touches the process-wide flag, so a later Ctrl-C keeps its meaning.
class CancelSource {
 public:
  void request() noexcept { flag_.store(true, std::memory_order_relaxed); }
  bool requested() const noexcept { return flag_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> flag_{false};
};

// While alive, cancel_requested() on this thread also reports `source`'s request (scopes nest:
// the innermost source and every enclosing one count). Create and destroy on the same thread;
// the source must outlive the scope.
class CancelScope {
 public:
  explicit CancelScope(const CancelSource* source) noexcept;
  // On a worker thread: sees what `outer` (a scope of the thread that started the worker, alive
  // until the worker is joined) sees, plus `source` if not null.
  CancelScope(const CancelSource* source, const CancelScope* outer) noexcept;
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

  // The scope entered on this thread (nullptr: none), for handing to worker threads.
  static const CancelScope* current() noexcept;
  bool requested() const noexcept;

 private:
  const CancelSource* source_;
  const CancelScope* outer_;    // consulted by requested()
  const CancelScope* restore_;  // this thread's scope before this one
};

// The process-wide flag, or a request of a scope entered on this thread.
bool cancel_requested() noexcept;
// Throws Error{ErrorKind::Cancelled}: "interrupted" after a signal, "cancelled" after a scope's
// request.
void check_cancelled();

}  // namespace cbuild
