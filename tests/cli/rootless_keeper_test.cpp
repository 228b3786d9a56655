// The user-namespace keeper (overlay/userns_keeper.h) through the real binary, run by a fresh
// unprivileged user with a subordinate range: with a runtime dir as logind makes it, commands
// share one user namespace (each with its mount namespace) and build root's image; a stale or
// foreign record, or a changed mapping, is not joined; without a usable runtime dir there is
// no keeper at all.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "oci/base/fs.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/root.h"
#include "tests/support/unprivileged_user.h"
#include "tests/cli/rootless_project.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

// Kills every process of the user when the test ends (declared after the user, so before
// userdel, which refuses a user with processes): CI keeps no keeper.
struct KillUserProcesses {
  uid_t uid;
  ~KillUserProcesses() {
    for (int i = 0; i < 100; ++i) {
      test::run_command({"pkill", "-KILL", "-U", std::to_string(uid)});
      if (test::run_command({"pgrep", "-U", std::to_string(uid)}).exit_code != 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
};

bool user_has_processes(uid_t uid) { return test::run_command({"pgrep", "-U", std::to_string(uid)}).exit_code == 0; }

// $XDG_RUNTIME_DIR as systemd-logind makes it: the user's, 0700 (or `mode`).
fs::path runtime_dir(const test::UnprivilegedUser& user, const std::string& name, fs::perms mode = fs::perms(0700)) {
  fs::path d = user.home() / name;
  fs::create_directories(d);
  REQUIRE(::chown(d.c_str(), user.uid(), user.gid()) == 0);
  fs::permissions(d, mode);
  return d;
}

struct Record {
  pid_t pid = 0;
  std::uint64_t start = 0;
  std::string text;
};

std::optional<Record> record(const fs::path& runtime) {
  fs::path f = runtime / "cbuild/userns";
  if (!fs::exists(f)) return std::nullopt;
  Record r;
  r.text = test::read_text(f);
  std::istringstream in(r.text);
  std::string key;
  while (in >> key) {
    if (key == "pid") in >> r.pid;
    else if (key == "start") in >> r.start;
    std::string rest;
    std::getline(in, rest);
  }
  return r;
}

std::string link(const std::string& path) {
  std::error_code ec;
  auto t = fs::read_symlink(path, ec);
  return ec ? std::string() : t.string();
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

void wait_gone(pid_t pid) {
  for (int i = 0; i < 100 && alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct Rootfs {
  TempDir tmp;
  fs::path path = tmp.path() / "rootfs";
  explicit Rootfs(const test::UnprivilegedUser& user) {
    fs::permissions(tmp.path(), fs::perms(0755));
    test::make_busybox_rootfs(path);
    user.own(path);
  }
};

// The user namespace a `cbuild run` of the user runs in ("user:[inode]").
std::string userns_of_run(const test::UnprivilegedUser& user, const Rootfs& rootfs, const std::vector<std::string>& env,
                          std::string* uid_map = nullptr) {
  auto r = user.run_cbuild(
      {"run", "--rootfs", rootfs.path.string(), "sh", "-c", "readlink /proc/self/ns/user; cat /proc/self/uid_map"},
      env);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::istringstream in(r.out);
  std::string ns;
  std::getline(in, ns);
  if (uid_map) *uid_map = r.out.substr(ns.size() + 1);
  return ns;
}

}  // namespace

TEST_CASE("rootless keeper: commands share one user namespace, each with its mounts, root's image [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  KillUserProcesses cleanup{user.uid()};
  fs::path run = runtime_dir(user, "run");
  std::vector<std::string> env{"XDG_RUNTIME_DIR=" + run.string()};
  Rootfs rootfs(user);

  std::string first = userns_of_run(user, rootfs, env);
  auto rec = record(run);
  REQUIRE(rec);
  INFO("record: " << rec->text);
  REQUIRE(rec->pid > 1);
  CHECK(alive(rec->pid));
  // The keeper holds the namespace the command ran in, and no mount namespace of cbuild's
  // (it stays in the host's), no fd, and a name saying what it is.
  std::string keeper = "/proc/" + std::to_string(rec->pid);
  CHECK(link(keeper + "/ns/user") == first);
  CHECK(link(keeper + "/ns/mnt") == link("/proc/self/ns/mnt"));
  CHECK(fs::is_empty(keeper + "/fd"));
  CHECK(trimmed(test::read_text(keeper + "/comm")) == "cbuild-userns");
  CHECK(rec->text.find("uid_map 0 " + std::to_string(user.uid()) + " 1;1 ") != std::string::npos);
  struct stat st {};
  REQUIRE(::stat((run / "cbuild").c_str(), &st) == 0);
  CHECK(st.st_uid == user.uid());
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((run / "cbuild/userns").c_str(), &st) == 0);
  CHECK(st.st_uid == user.uid());

  std::string second = userns_of_run(user, rootfs, env);
  CHECK(second == first);
  auto rec2 = record(run);
  REQUIRE(rec2);
  CHECK(rec2->pid == rec->pid);

  // A build in the joined namespace: root's digest, nothing left mounted.
  test::RootlessProject rp(user);
  rp.p.file("a.txt", "copied\n");
  rp.p.file("Dockerfile",
            "FROM cbuild-test-busybox:1\n"
            "COPY --chown=1000:1500 a.txt /home/app/a.txt\n"
            "RUN mkdir /owned && echo k > /owned/k && chown 1000:1000 /owned/k && chmod 4755 /owned/k && rm /bin/vi\n");
  auto e = rp.env();
  e.push_back(env[0]);
  auto rootless = user.run_cbuild(rp.args(rp.p.root, "kept:1"), e);
  INFO("rootless stderr: " << rootless.err);
  REQUIRE(rootless.exit_code == 0);
  CHECK(rootless.err.find("single id") == std::string::npos);
  auto rooted = rp.build_as_root("kept-root:1");
  REQUIRE(rooted.exit_code == 0);
  CHECK(test::RootlessProject::digest(rp.p.root, "kept:1") == test::RootlessProject::digest(rp.root_store, "kept-root:1"));
  CHECK_FALSE(test::has_mounts_under(rp.p.dir.path()));
  auto rec3 = record(run);
  REQUIRE(rec3);
  CHECK(rec3->pid == rec->pid);
  // The keeper is the only process of the user left: no mount namespace outlives a command.
  auto left = test::run_command({"pgrep", "-U", std::to_string(user.uid())});
  CHECK(trimmed(left.out) == std::to_string(rec->pid));
}

TEST_CASE("rootless keeper: a stale or foreign record is not joined, and replaced [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  KillUserProcesses cleanup{user.uid()};
  fs::path run = runtime_dir(user, "run");
  std::vector<std::string> env{"XDG_RUNTIME_DIR=" + run.string()};
  Rootfs rootfs(user);

  userns_of_run(user, rootfs, env);
  auto rec = record(run);
  REQUIRE(rec);

  // The keeper died: a new namespace and keeper.
  REQUIRE(::kill(rec->pid, SIGKILL) == 0);
  wait_gone(rec->pid);
  // (Its namespace is gone, so the new one may get its inode: the keeper's pid tells.)
  std::string second = userns_of_run(user, rootfs, env);
  auto rec2 = record(run);
  REQUIRE(rec2);
  CHECK(rec2->pid != rec->pid);
  CHECK(alive(rec2->pid));
  CHECK(link("/proc/" + std::to_string(rec2->pid) + "/ns/user") == second);

  // The record names a live process of the user whose start time is not the recorded one
  // (as a reused pid would): not joined, and that process is left alone.
  {
    std::string text = rec2->text;
    std::string from = "start " + std::to_string(rec2->start);
    text.replace(text.find(from), from.size(), "start " + std::to_string(rec2->start + 1));
    test::write_text(run / "cbuild/userns", text);
    REQUIRE(::chown((run / "cbuild/userns").c_str(), user.uid(), user.gid()) == 0);
  }
  std::string third = userns_of_run(user, rootfs, env);
  CHECK(third != second);  // the live keeper still holds `second`, so the inodes differ
  CHECK(alive(rec2->pid));
  auto rec3 = record(run);
  REQUIRE(rec3);
  CHECK(rec3->pid != rec2->pid);
  CHECK(link("/proc/" + std::to_string(rec3->pid) + "/ns/user") == third);

  // Garbage, or a record someone else owns: a new namespace, the command unharmed.
  test::write_text(run / "cbuild/userns", "pid x\ngarbage\n");
  REQUIRE(::chown((run / "cbuild/userns").c_str(), user.uid(), user.gid()) == 0);
  std::string fourth = userns_of_run(user, rootfs, env);
  CHECK(fourth != third);
  auto rec4 = record(run);
  REQUIRE(rec4);
  CHECK(link("/proc/" + std::to_string(rec4->pid) + "/ns/user") == fourth);
  REQUIRE(::chown((run / "cbuild/userns").c_str(), 0, 0) == 0);
  std::string fifth = userns_of_run(user, rootfs, env);
  CHECK(fifth != fourth);
}

TEST_CASE("rootless keeper: a namespace mapping other ids than /etc/subuid now grants is not joined [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  KillUserProcesses cleanup{user.uid()};
  fs::path run = runtime_dir(user, "run");
  std::vector<std::string> env{"XDG_RUNTIME_DIR=" + run.string()};
  Rootfs rootfs(user);

  std::string map1;
  userns_of_run(user, rootfs, env, &map1);
  auto rec = record(run);
  REQUIRE(rec);
  // A second range, outside what useradd hands out (SUB_UID_MAX 600100000).
  std::uint64_t start = 700000000ULL + (user.uid() % 1000) * 65536ULL;
  std::string range = std::to_string(start) + "-" + std::to_string(start + 65535);
  auto mod = test::run_command({"usermod", "--add-subuids", range, "--add-subgids", range, user.name()});
  INFO(mod.err);
  REQUIRE(mod.exit_code == 0);

  std::string map2;
  std::string second = userns_of_run(user, rootfs, env, &map2);
  CHECK(map2.find(std::to_string(start)) != std::string::npos);
  CHECK(map1.find(std::to_string(start)) == std::string::npos);
  // The old keeper was this user's: stopped, and the record names the new one.
  wait_gone(rec->pid);
  CHECK_FALSE(alive(rec->pid));
  auto rec2 = record(run);
  REQUIRE(rec2);
  CHECK(rec2->pid != rec->pid);
  CHECK(link("/proc/" + std::to_string(rec2->pid) + "/ns/user") == second);
  CHECK(userns_of_run(user, rootfs, env) == second);
}

TEST_CASE("rootless keeper: none without a usable XDG_RUNTIME_DIR [root]") {
  REQUIRE_ROOT();
  test::UnprivilegedUser user;
  KillUserProcesses cleanup{user.uid()};
  Rootfs rootfs(user);

  userns_of_run(user, rootfs, {});
  CHECK_FALSE(user_has_processes(user.uid()));

  // Writable by others (group or world), or not the user's: not used.
  for (auto mode : {fs::perms(0777), fs::perms(0770), fs::perms(01777)}) {
    fs::path run = runtime_dir(user, "run" + std::to_string(static_cast<unsigned>(mode)), mode);
    auto r = user.run_cbuild({"images"}, {"XDG_RUNTIME_DIR=" + run.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_FALSE(fs::exists(run / "cbuild"));
    CHECK_FALSE(user_has_processes(user.uid()));
  }
  fs::path roots = user.home() / "roots";
  fs::create_directories(roots);
  fs::permissions(roots, fs::perms(0700));
  auto r = user.run_cbuild({"images"}, {"XDG_RUNTIME_DIR=" + roots.string()});
  CHECK(r.exit_code == 0);
  CHECK_FALSE(fs::exists(roots / "cbuild"));
  CHECK_FALSE(user_has_processes(user.uid()));
  // A cbuild/ below a good runtime dir that others may write: not used either.
  fs::path run = runtime_dir(user, "run");
  fs::create_directories(run / "cbuild");
  REQUIRE(::chown((run / "cbuild").c_str(), user.uid(), user.gid()) == 0);
  fs::permissions(run / "cbuild", fs::perms(0777));
  auto r2 = user.run_cbuild({"images"}, {"XDG_RUNTIME_DIR=" + run.string()});
  CHECK(r2.exit_code == 0);
  CHECK_FALSE(fs::exists(run / "cbuild/userns"));
  CHECK_FALSE(user_has_processes(user.uid()));
}
