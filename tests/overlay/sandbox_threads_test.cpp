// The sandbox started from a busy multi-threaded process — what a parallel build is: other
// threads allocate, print and start sandboxes of their own while a RUN starts. Its child is a
// copy of that process taken at any moment, so it must never wait for a lock another thread
// held then (glibc's fork() and set*id() do; sandbox_child.cpp avoids both). A regression
// shows as the run's timeout, not a hang.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/unique_fd.h"
#include "overlay/sandbox.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::overlay;
using namespace std::chrono_literals;

TEST_CASE("sandbox: runs started while other threads allocate and run sandboxes never hang [root]") {
  REQUIRE_ROOT();
  TempDir dir;
  test::make_busybox_rootfs(dir.path() / "rootfs");
  std::atomic<bool> stop{false};
  std::vector<std::thread> noise;
  for (int t = 0; t < 3; ++t)
    noise.emplace_back([&] {
      std::FILE* null = std::fopen("/dev/null", "w");
      while (!stop.load()) {
        std::vector<std::string> v;
        for (int i = 0; i < 200; ++i) v.emplace_back(std::string(static_cast<std::size_t>(16 + i * 7), 'x'));
        std::fprintf(null, "%zu\n", v.size());
      }
      std::fclose(null);
    });
  UniqueFd devnull(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  std::atomic<int> ok{0}, failed{0};
  std::mutex error_mu;
  std::string first_error;
  auto runner = [&](int n, const std::string& user) {
    for (int i = 0; i < n && failed == 0; ++i) {
      RunSpec spec;
      spec.rootfs = dir.path() / "rootfs";
      spec.argv = {"true"};
      spec.user = user;  // a non-root user also exercises the credential calls
      spec.stdout_fd = spec.stderr_fd = devnull.get();
      spec.timeout = 5s;  // `true` takes milliseconds; a child stuck on a lock takes this
      try {
        if (Sandbox::run(spec).ok()) ++ok;
        else ++failed;
      } catch (const Error& e) {
        std::lock_guard lock(error_mu);
        if (failed++ == 0) first_error = e.what();
      }
    }
  };
  std::thread other(runner, 15, "app");
  runner(15, "");
  other.join();
  stop = true;
  for (auto& t : noise) t.join();
  INFO(first_error);
  CHECK(failed.load() == 0);
  CHECK(ok.load() == 30);
}
