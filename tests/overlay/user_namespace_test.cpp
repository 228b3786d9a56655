#include "overlay/user_namespace.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "tests/support/root.h"
#include "tests/support/unprivileged_user.h"

using namespace cbuild::overlay;
namespace fs = std::filesystem;

TEST_CASE("user_namespace: subordinate ranges by name or uid, in file order") {
  const char* text =
      "# comment\n"
      "alice:100000:65536\n"
      "bob:165536:65536\n"
      "1000:300000:10\n"
      "alice:400000:5\r\n"
      "alice:bad:5\n"
      "alice:500000:0\n"
      "alice:600000\n"
      "\n"
      "alicex:700000:9\n";
  auto r = parse_subordinate_ids(text, "alice", 1000);
  REQUIRE(r.size() == 3);
  CHECK(r[0].start == 100000);
  CHECK(r[0].count == 65536);
  CHECK(r[1].start == 300000);
  CHECK(r[1].count == 10);
  CHECK(r[2].start == 400000);
  CHECK(r[2].count == 5);
  // No name (a uid without a passwd entry): only numeric lines.
  auto by_uid = parse_subordinate_ids(text, "", 1000);
  REQUIRE(by_uid.size() == 1);
  CHECK(by_uid[0].start == 300000);
  CHECK(parse_subordinate_ids(text, "carol", 42).empty());
}

TEST_CASE("user_namespace: the id counts cover 0 and every range") {
  IdMapping m;
  CHECK(m.uid_count() == 1);
  m.uid_ranges = {{100000, 65536}, {300000, 10}};
  m.gid_ranges = {{100000, 65536}};
  CHECK(m.uid_count() == 65547);
  CHECK(m.gid_count() == 65537);
}

TEST_CASE("user_namespace: the overlay xattrs follow the process's user namespace") {
  if (in_initial_user_namespace()) {
    CHECK(overlay_xattr_namespace() == XattrNamespace::Trusted);
    CHECK(gid_is_mapped(5));
    CHECK_FALSE(rootless_limit_message("mknod", EPERM, "dev/console"));
  } else {  // the tests themselves run inside a container's user namespace
    CHECK(overlay_xattr_namespace() == XattrNamespace::User);
    CHECK(rootless_limit_message("mknod", EPERM, "dev/console"));
  }
  CHECK_FALSE(current_id_mapping());  // only enter_user_namespace() sets it
  CHECK_FALSE(rootless_limit_message("mknod", ENOSPC, "dev/console"));
}

namespace {

// A stand-in for newuidmap or newgidmap that marks its start, waits up to 10 s for the other
// one to start too, then execs the real program.
void write_waiting_helper(const fs::path& path, const fs::path& dir, const char* self, const char* other,
                          const char* real) {
  std::ofstream(path) << "#!/bin/sh\n"
                      << ": > '" << (dir / self).string() << "'\n"
                      << "i=0\n"
                      << "while [ ! -e '" << (dir / other).string() << "' ]; do\n"
                      << "  i=$((i + 1)); [ $i -le 200 ] || { echo '" << self << " ran alone'; exit 1; }\n"
                      << "  /bin/sleep 0.05\n"
                      << "done\n"
                      << "exec " << real << " \"$@\"\n";
  fs::permissions(path, fs::perms(0755));
}

// enter_user_namespace(o) in a child running as `user` (it moves its caller for good): the
// mapping's kind, the uid inside and the uid_map's line count, or "error: " and the message.
std::string enter_as(const cbuild::test::UnprivilegedUser& user, const UserNamespaceOptions& o) {
  int pp[2];
  REQUIRE(::pipe2(pp, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pp[0]);
    std::string result;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(user.gid(), user.gid(), user.gid()) != 0 ||
        ::setresuid(user.uid(), user.uid(), user.uid()) != 0) {
      result = std::string("dropping to the user: ") + std::strerror(errno);
    } else {
      try {
        IdMapping m = enter_user_namespace(o);
        std::ifstream in("/proc/self/uid_map");
        std::string line;
        int lines = 0;
        while (std::getline(in, line)) ++lines;
        result = std::string(m.kind == IdMapping::Kind::Range ? "range" : "single") + " uid " +
                 std::to_string(::getuid()) + " map lines " + std::to_string(lines);
      } catch (const std::exception& e) {
        result = std::string("error: ") + e.what();
      }
    }
    (void)!::write(pp[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(pp[1]);
  std::string result;
  char buf[512];
  for (ssize_t n; (n = ::read(pp[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    result.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pp[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return result;
}

}  // namespace

TEST_CASE("user_namespace: newuidmap and newgidmap run at once, so a user's command waits for one [root]") {
  REQUIRE_ROOT();
  REQUIRE(::access("/usr/bin/newuidmap", X_OK) == 0);
  cbuild::test::UnprivilegedUser user;
  const fs::path dir = user.home() / "helpers";
  fs::create_directories(dir);
  UserNamespaceOptions o;
  o.newuidmap = (dir / "uidmap").string();
  o.newgidmap = (dir / "gidmap").string();
  write_waiting_helper(o.newuidmap, dir, "uid-started", "gid-started", "/usr/bin/newuidmap");
  write_waiting_helper(o.newgidmap, dir, "gid-started", "uid-started", "/usr/bin/newgidmap");
  user.own(dir);

  std::string result = enter_as(user, o);
  CHECK(result == "range uid 0 map lines 2");
  CHECK(fs::exists(dir / "uid-started"));
  CHECK(fs::exists(dir / "gid-started"));
}

TEST_CASE("user_namespace: a failing newuidmap is quoted, with its command line [root]") {
  REQUIRE_ROOT();
  REQUIRE(::access("/usr/bin/newgidmap", X_OK) == 0);
  cbuild::test::UnprivilegedUser user;
  const fs::path dir = user.home() / "helpers";
  fs::create_directories(dir);
  UserNamespaceOptions o;
  o.newuidmap = (dir / "uidmap").string();
  o.newgidmap = "/usr/bin/newgidmap";
  std::ofstream(o.newuidmap) << "#!/bin/sh\necho 'uid range refused'\nexit 1\n";
  fs::permissions(o.newuidmap, fs::perms(0755));
  user.own(dir);
  std::string result = enter_as(user, o);
  CHECK(result.rfind("error: entering a user namespace: mapping its ids failed: uid range refused;'" + o.newuidmap, 0) == 0);
  CHECK(result.find("' failed") != std::string::npos);
  CHECK(result.find("newgidmap") == std::string::npos);  // it succeeded
}
