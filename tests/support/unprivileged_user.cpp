#include "tests/support/unprivileged_user.h"

#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

namespace cbuild::test {
namespace {

std::vector<std::string> own_ranges(const char* file, const std::string& name) {
  std::ifstream in(file);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + ":", 0) != 0) continue;
    std::istringstream f(line.substr(name.size() + 1));
    std::string start, count;
    std::getline(f, start, ':');
    std::getline(f, count);
    out.push_back(start + "-" + std::to_string(std::stoull(start) + std::stoull(count) - 1));
  }
  return out;
}

}  // namespace

UnprivilegedUser::UnprivilegedUser() {
  static std::atomic<int> counter{0};
  name_ = "cbrl" + std::to_string(::getpid()) + "x" + std::to_string(counter++);
  // Left over from a killed run that reused this pid: remove it first.
  run_command({"userdel", "-r", "-f", name_});
  auto r = run_command({"useradd", "-m", "-s", "/bin/sh", name_});
  REQUIRE_MESSAGE(r.exit_code == 0, "useradd " << name_ << ": " << r.err);
  struct passwd* pw = ::getpwnam(name_.c_str());
  REQUIRE(pw != nullptr);
  uid_ = pw->pw_uid;
  gid_ = pw->pw_gid;
  home_ = pw->pw_dir;
}

UnprivilegedUser::~UnprivilegedUser() {
  // userdel also drops the user's /etc/subuid and /etc/subgid lines.
  auto r = run_command({"userdel", "-r", "-f", name_});
  if (r.exit_code != 0 && r.exit_code != 12) MESSAGE("userdel " << name_ << ": " << r.err);
}

void UnprivilegedUser::without_subordinate_ids() {
  for (const auto& range : own_ranges("/etc/subuid", name_)) {
    auto r = run_command({"usermod", "--del-subuids", range, name_});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }
  for (const auto& range : own_ranges("/etc/subgid", name_)) {
    auto r = run_command({"usermod", "--del-subgids", range, name_});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }
  REQUIRE(own_ranges("/etc/subuid", name_).empty());
  REQUIRE(own_ranges("/etc/subgid", name_).empty());
}

void UnprivilegedUser::own(const std::filesystem::path& dir) const {
  auto r = run_command({"chown", "-R", std::to_string(uid_) + ":" + std::to_string(gid_), dir.string()});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
}

CommandResult UnprivilegedUser::run(const std::vector<std::string>& argv, const std::vector<std::string>& env) const {
  std::vector<std::string> a{"setpriv", "--reuid", std::to_string(uid_), "--regid", std::to_string(gid_),
                             "--init-groups", "--", "env", "-i",
                             "HOME=" + home_.string(), "USER=" + name_,
                             "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"};
  a.insert(a.end(), env.begin(), env.end());
  a.insert(a.end(), argv.begin(), argv.end());
  return run_command(a);
}

CommandResult UnprivilegedUser::run_cbuild(const std::vector<std::string>& args,
                                           const std::vector<std::string>& env) const {
  std::vector<std::string> argv{CBUILD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, env);
}

}  // namespace cbuild::test
