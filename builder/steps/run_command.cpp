#include "builder/steps/run_command.h"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "oci/base/error.h"
#include "oci/base/unique_fd.h"
#include "overlay/chroot_run.h"

namespace cbuild::builder {

namespace {
constexpr std::size_t kTailLines = 20;
constexpr std::size_t kMaxLine = 64 * 1024;  // longer lines are reported in pieces
}  // namespace

RunOutcome run_with_output(overlay::RunSpec spec, Progress& progress, const StepRef& step, bool chroot) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe", "RUN output");
  UniqueFd rd(fds[0]), wr(fds[1]);
  RunOutcome out;
  std::thread reader([&] {
    std::string pending;
    char buf[16384];
    auto emit = [&](std::string line) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      progress.step_output(step, line);
      out.tail.push_back(std::move(line));
      if (out.tail.size() > kTailLines) out.tail.pop_front();
    };
    for (;;) {
      ssize_t n = ::read(rd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pending.append(buf, static_cast<std::size_t>(n));
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
        emit(pending.substr(start, nl - start));
      pending.erase(0, start);
      if (pending.size() > kMaxLine) {
        emit(pending);
        pending.clear();
      }
    }
    if (!pending.empty()) emit(pending);
  });
  spec.stdout_fd = wr.get();
  spec.stderr_fd = wr.get();
  try {
    out.status = chroot ? overlay::run_in_chroot(spec) : overlay::Sandbox::run(spec);
  } catch (...) {
    wr.reset();
    reader.join();
    throw;
  }
  // The command and everything it started are gone (the PID namespace died; in a chroot, its
  // process group was killed), so closing our write end gives the reader EOF.
  wr.reset();
  reader.join();
  return out;
}

}  // namespace cbuild::builder
