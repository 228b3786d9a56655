// An unprivileged user for rootless tests, created with `useradd -m` (which gives it a
// subordinate uid/gid range in /etc/subuid and /etc/subgid) and removed with its home and
// ranges by the destructor. Names are unique per process and instance ("cbrl<pid>x<n>"), so
// parallel test runs never share or delete each other's user. Root only.
//
// without_subordinate_ids() removes this user's own ranges (usermod --del-subuids/
// --del-subgids), leaving every other line of the files alone.
// run() executes argv as the user (setpriv with the user's ids and groups) in a clean
// environment: HOME, USER, PATH, plus `env` ("KEY=VALUE").
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/run_command.h"

namespace cbuild::test {

class UnprivilegedUser {
 public:
  UnprivilegedUser();
  ~UnprivilegedUser();
  UnprivilegedUser(const UnprivilegedUser&) = delete;
  UnprivilegedUser& operator=(const UnprivilegedUser&) = delete;

  const std::string& name() const { return name_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  const std::filesystem::path& home() const { return home_; }

  void without_subordinate_ids();
  // Gives the user every file below `dir` (and `dir`).
  void own(const std::filesystem::path& dir) const;
  CommandResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) const;
  // The real cbuild binary, as this user.
  CommandResult run_cbuild(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) const;

 private:
  std::string name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::filesystem::path home_;
};

}  // namespace cbuild::test
