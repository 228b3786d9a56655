// Owner stamps (pid + start time) and the reclaiming of what dead owners left in a store: a
// recycled pid is not the owner, a live owner's entries stay, mounts in a dead owner's entry are
// detached and a symlink in it is removed, never followed.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "oci/layout_store.h"
#include "tests/support/background_command.h"
#include "tests/support/root.h"

using namespace cbuild;
namespace fs = std::filesystem;

namespace {

// A child that sleeps until killed: a live process other than this one.
struct Sleeper {
  pid_t pid = ::fork();
  Sleeper() {
    if (pid == 0) {
      ::pause();
      ::_exit(0);
    }
  }
  ~Sleeper() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

// The stamp of a process that has exited (pid reaped, and not reused this quickly).
OwnerStamp dead_stamp() {
  OwnerStamp s;
  {
    Sleeper child;
    s = OwnerStamp{child.pid, process_start_time(child.pid).value()};
  }
  return s;
}

}  // namespace

TEST_CASE("owner: a stamp is alive while its process runs with the same start time") {
  OwnerStamp me = OwnerStamp::self();
  CHECK(me.pid == ::getpid());
  CHECK(owner_alive(me));
  // Same pid, other start time: a recycled pid is not the owner.
  CHECK_FALSE(owner_alive(OwnerStamp{me.pid, me.start + 1}));
  CHECK_FALSE(owner_alive(dead_stamp()));
  Sleeper child;
  CHECK(owner_alive(OwnerStamp{child.pid, process_start_time(child.pid).value()}));

  CHECK(me.str() == std::to_string(me.pid) + "." + std::to_string(me.start));
  CHECK(stamp_in_name("proc-12.345") == OwnerStamp{12, 345});
  CHECK(stamp_in_name("ingest-12.345-abcdef") == OwnerStamp{12, 345});
  CHECK_FALSE(stamp_in_name("ingest-12-abcdef"));
  CHECK_FALSE(stamp_in_name("active-12-3"));  // an older version's scratch: not judged by pid
  CHECK_FALSE(stamp_in_name("x-12.y"));
  CHECK_FALSE(stamp_in_name("export-x1b2"));
  CHECK_FALSE(stamp_in_name("-12-345"));
}

TEST_CASE("owner: opening a store reclaims dead owners' entries and keeps live ones'") {
  TempDir t;
  fs::path root = t.path() / "store";
  auto store = oci::LayoutStore::open(root);
  OwnerStamp me = OwnerStamp::self();
  Sleeper child;
  OwnerStamp live{child.pid, process_start_time(child.pid).value()};
  OwnerStamp recycled{me.pid, me.start + 1};
  OwnerStamp dead = dead_stamp();

  fs::path outside = t.path() / "outside";
  fs::create_directories(outside);
  std::ofstream(outside / "precious") << "keep";
  fs::path dead_dir = root / "tmp" / ("proc-" + dead.str());
  fs::create_directories(dead_dir / "deep");
  fs::create_directory_symlink(outside, dead_dir / "deep" / "link");
  std::ofstream(dead_dir / "deep" / "file") << "x";
  fs::create_directories(root / "tmp" / ("proc-" + recycled.str()));
  fs::create_directories(root / "tmp" / ("proc-" + live.str()));
  std::ofstream(root / "tmp" / ("ingest-" + dead.str() + "-0123")) << "partial";
  std::ofstream(root / "tmp" / ("ingest-" + live.str() + "-0123")) << "in progress";
  std::ofstream(root / "tmp" / "unstamped") << "not ours to judge";
  fs::create_directories(root / "snapshots" / ".tmp" / ("active-" + dead.str() + "-0") / "upper");
  fs::create_directories(root / "snapshots" / ".tmp" / ("active-" + live.str() + "-0") / "upper");
  std::ofstream(root / "leases" / ("build-" + dead.str() + "-feed")) << "";
  auto own_lease = store->acquire_lease("build");

  auto reopened = oci::LayoutStore::open(root);
  CHECK(test::dir_names(root / "tmp") ==
        std::vector<std::string>{"ingest-" + live.str() + "-0123", "proc-" + live.str(), "unstamped"});
  CHECK(test::dir_names(root / "snapshots" / ".tmp") == std::vector<std::string>{"active-" + live.str() + "-0"});
  CHECK(test::dir_names(root / "leases") == std::vector<std::string>{own_lease->path().filename().string()});
  CHECK(read_file(outside / "precious") == "keep");
}

TEST_CASE("owner: a dead owner's mounts are detached before its entry is removed") {
  REQUIRE_ROOT();
  TempDir t;
  fs::path root = t.path() / "store";
  oci::LayoutStore::open(root);
  OwnerStamp dead = dead_stamp();
  fs::path dead_dir = root / "tmp" / ("proc-" + dead.str());
  fs::create_directories(dead_dir / "mnt" / "merged");
  REQUIRE(::mount("tmpfs", (dead_dir / "mnt" / "merged").c_str(), "tmpfs", 0, "size=1m") == 0);
  fs::create_directories(dead_dir / "mnt" / "merged" / "inner");
  REQUIRE(::mount("tmpfs", (dead_dir / "mnt" / "merged" / "inner").c_str(), "tmpfs", 0, "size=1m") == 0);
  std::ofstream(dead_dir / "mnt" / "merged" / "inner" / "f") << "x";
  REQUIRE(test::mounts_mentioning(dead_dir.string()).size() == 2);

  oci::LayoutStore::open(root);
  CHECK(test::mounts_mentioning(dead_dir.string()).empty());
  CHECK_FALSE(fs::exists(dead_dir));
}

TEST_CASE("owner: remove_dead_atomic_temps removes dead writers' temp files only") {
  TempDir t;
  Sleeper child;
  OwnerStamp live{child.pid, process_start_time(child.pid).value()};
  OwnerStamp dead = dead_stamp();
  std::ofstream(t.path() / (".out.tar.tmp-" + dead.str() + "-abc")) << "partial";
  std::ofstream(t.path() / (".out.tar.tmp-" + live.str() + "-abc")) << "in progress";
  std::ofstream(t.path() / ".other.tmp-notastamp") << "someone else's";
  std::ofstream(t.path() / "out.tar") << "done";
  CHECK(remove_dead_atomic_temps(t.path()) == 1);
  CHECK(test::dir_names(t.path()) ==
        std::vector<std::string>{".other.tmp-notastamp", ".out.tar.tmp-" + live.str() + "-abc", "out.tar"});
  // AtomicFile names its temp file with its owner's stamp (this process), so it is kept.
  AtomicFile f(t.path() / "new.tar");
  std::string prefix = ".new.tar.tmp-" + OwnerStamp::self().str() + "-";
  auto names = test::dir_names(t.path());
  CHECK(std::count_if(names.begin(), names.end(), [&](const std::string& n) { return n.starts_with(prefix); }) == 1);
  CHECK(remove_dead_atomic_temps(t.path()) == 0);
}

TEST_CASE("owner: a ProcessScratch is TempDir's default parent while it lives, shared by its users") {
  TempDir t;
  fs::path before = default_temp_parent();
  fs::path dir = t.path() / ("proc-" + OwnerStamp::self().str());
  {
    ProcessScratch a(t.path());
    CHECK(a.path() == dir);
    CHECK(default_temp_parent() == dir);
    TempDir inside;
    CHECK(inside.path().parent_path() == dir);
    {
      ProcessScratch b(t.path());  // a second build in this process
      CHECK(b.path() == dir);
    }
    CHECK(fs::is_directory(dir));
    CHECK(fs::is_directory(inside.path()));
    // Another process opening the store sees a live owner and keeps it.
    CHECK(reclaim_dead_entries(t.path()) == 0);
    std::ofstream(inside.path() / "left") << "x";
    inside.release();
  }
  CHECK_FALSE(fs::exists(dir));
  CHECK(default_temp_parent() == before);
}
