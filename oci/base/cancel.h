// Cancellation (Ctrl-C). The CLI installs SIGINT/SIGTERM handlers that call request_cancel();
// long loops, curl progress callbacks and waits call check_cancelled(), which throws
// Error{Cancelled}. The flag is process-wide and async-signal-safe to set.
#pragma once

#include <atomic>

namespace cbuild {

std::atomic<int>& cancel_signal() noexcept;  // 0 while running; the signal number once cancelled

inline void request_cancel(int signo = 2) noexcept { cancel_signal().store(signo, std::memory_order_relaxed); }
inline bool cancel_requested() noexcept { return cancel_signal().load(std::memory_order_relaxed) != 0; }
// Throws Error{ErrorKind::Cancelled, "interrupted"} when a cancel was requested.
void check_cancelled();

}  // namespace cbuild
