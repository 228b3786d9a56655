// CacheMountStore: the persistent directories of RUN --mount=type=cache and their sharing
// modes (shared, locked, private), creation with mode/owner and a seed, and clear().
#include "builder/cache/cache_mounts.h"

#include <sys/stat.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "oci/base/fs.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using builder::CacheMountLease;
using builder::CacheMountRequest;
using builder::CacheMountStore;
using Sharing = CacheMountRequest::Sharing;

namespace {

CacheMountRequest request(const std::string& id, Sharing sharing = Sharing::Shared) {
  return CacheMountRequest{.id = id, .key = "id " + id, .sharing = sharing};
}

}  // namespace

TEST_CASE("cache mounts: a directory per id, kept, made once with its mode and owner, seeded once") {
  REQUIRE_ROOT();  // chown to the requested owner
  TempDir root;
  CacheMountStore store(root.path());
  int seeded = 0;
  auto seed = [&](const fs::path& dir) {
    ++seeded;
    std::ofstream(dir / "seed") << "s";
  };
  fs::path first;
  {
    CacheMountRequest r = request("/root/.cache");
    r.mode = 0700;
    r.uid = 1000;
    r.gid = 1001;
    CacheMountLease a = store.acquire(r, seed);
    first = a.path();
    struct stat st {};
    REQUIRE(::stat(first.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    CHECK(st.st_uid == 1000);
    CHECK(st.st_gid == 1001);
    std::ofstream(first / "kept") << "k";
  }
  CHECK(first.string().find(".cache") == std::string::npos);  // the id is hashed, never a path
  CacheMountLease again = store.acquire(request("/root/.cache"), seed);
  CHECK(again.path() == first);
  CHECK(fs::exists(again.path() / "kept"));
  CHECK(seeded == 1);
  CHECK(store.acquire(request("other")).path() != first);
  CHECK(read_file(first.parent_path().parent_path() / "id") == "/root/.cache\n");
}

TEST_CASE("cache mounts: shared holders use one directory at once; locked waits; private takes a fresh one when busy") {
  REQUIRE_ROOT();
  TempDir root;
  CacheMountStore store(root.path());
  CacheMountLease held = store.acquire(request("x"));
  const fs::path instance0 = held.path();
  CacheMountLease shared = store.acquire(request("x"));  // would block if shared locked exclusively
  CHECK(shared.path() == held.path());

  CacheMountLease priv = store.acquire(request("x", Sharing::Private));  // instance 0 is busy
  CHECK(priv.path() != held.path());
  CacheMountLease priv2 = store.acquire(request("x", Sharing::Private));
  CHECK(priv2.path() != priv.path());
  CHECK(priv2.path() != held.path());

  std::atomic<bool> got{false};
  std::thread locked([&] {
    CacheMountLease l = store.acquire(request("x", Sharing::Locked));
    got = true;
    CHECK(l.path() == instance0);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_FALSE(got.load());  // both shared holders still have it
  { CacheMountLease drop1 = std::move(held); }
  { CacheMountLease drop2 = std::move(shared); }
  locked.join();
  CHECK(got.load());
}

TEST_CASE("cache mounts: clear() removes what nobody holds and keeps what a RUN uses") {
  REQUIRE_ROOT();
  TempDir root;
  CacheMountStore store(root.path());
  fs::path free_dir;
  {
    CacheMountLease a = store.acquire(request("free"));
    free_dir = a.path();
    std::ofstream(a.path() / "f") << "1";
  }
  CacheMountLease busy = store.acquire(request("busy"));
  std::ofstream(busy.path() / "f") << "1";
  CHECK(store.clear() == 1);
  CHECK_FALSE(fs::exists(free_dir));
  CHECK(fs::exists(busy.path() / "f"));
  CacheMountLease fresh = store.acquire(request("free"));
  CHECK(fs::is_empty(fresh.path()));
}
