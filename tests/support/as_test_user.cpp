#include "tests/support/as_test_user.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <system_error>

#include <doctest/doctest.h>

#include "oci/base/owner.h"

namespace fs = std::filesystem;

namespace cbuild::test {
namespace {

std::optional<TestUser> lookup() {
  const char* name = std::getenv("CBUILD_TEST_AS_USER");
  if (!name || !*name) return std::nullopt;
  struct passwd* pw = ::getpwnam(name);
  if (!pw) FAIL("CBUILD_TEST_AS_USER=" << name << ": no such user");
  return TestUser{name, pw->pw_uid, pw->pw_gid, pw->pw_dir};
}

void lend_one(const fs::path& p, const struct stat& st, const TestUser& u) {
  if (st.st_uid != 0) return;
  gid_t gid = st.st_gid == 0 ? u.gid : st.st_gid;
  if (::lchown(p.c_str(), u.uid, gid) != 0) return;  // vanished meanwhile: nothing to lend
  // chown clears setuid (and setgid on group-executables); the context's modes must reach the
  // image unchanged.
  if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID))) ::chmod(p.c_str(), st.st_mode & 07777);
}

void lend_tree(const fs::path& top, const TestUser& u) {
  struct stat top_st {};
  if (::lstat(top.c_str(), &top_st) != 0 || !S_ISDIR(top_st.st_mode)) return;
  lend_one(top, top_st, u);
  std::error_code ec;
  fs::recursive_directory_iterator it(top, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    // Another filesystem mounted inside (a test's tmpfs) is the test's business.
    if (S_ISDIR(st.st_mode) && st.st_dev != top_st.st_dev) {
      it.disable_recursion_pending();
      continue;
    }
    lend_one(it->path(), st, u);
  }
}

// The directory directly below `parent` that holds `p`, or empty.
fs::path top_below(const fs::path& parent, const fs::path& p) {
  if (!p.is_absolute()) return {};
  auto rel = p.lexically_normal().lexically_relative(parent.lexically_normal());
  if (rel.empty() || *rel.begin() == ".." || *rel.begin() == ".") return {};
  return parent / *rel.begin();
}

void lend_dirs(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env, const TestUser& u) {
  const fs::path parent = default_temp_parent();
  std::set<fs::path> tops;
  auto consider = [&](const std::string& s) {
    // A flag's value may follow '=' ("dest=/tmp/…", "--root=/tmp/…", "TMPDIR=/tmp/…"); a
    // --secret or -o value has several "k=v" parts separated by commas.
    std::size_t from = 0;
    while (from <= s.size()) {
      std::size_t comma = s.find(',', from);
      std::string part = s.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
      auto eq = part.find('=');
      for (const std::string& v : {part, eq == std::string::npos ? std::string() : part.substr(eq + 1)})
        if (auto t = top_below(parent, v); !t.empty()) tops.insert(t);
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
  };
  for (std::size_t i = 1; i < argv.size(); ++i) consider(argv[i]);
  for (const auto& e : extra_env) consider(e);
  static std::mutex mu;
  std::lock_guard lock(mu);
  for (const auto& t : tops) lend_tree(t, u);
}

bool sets(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& e : env)
    if (e.rfind(key + "=", 0) == 0) return true;
  return false;
}

}  // namespace

const std::optional<TestUser>& test_user() {
  static const std::optional<TestUser> u = lookup();
  return u;
}

void lend_to_test_user(const fs::path& dir) {
  if (const auto& u = test_user()) lend_tree(dir, *u);
}

std::vector<std::string> as_test_user(std::vector<std::string> argv, const std::vector<std::string>& extra_env) {
  const auto& u = test_user();
  if (!u) return argv;
  lend_dirs(argv, extra_env, *u);
  std::vector<std::string> a{"setpriv", "--reuid", std::to_string(u->uid), "--regid", std::to_string(u->gid),
                             "--init-groups", "--", "env"};
  // Root's per-user directories are not the user's: cbuild falls back to HOME's.
  for (const char* k : {"XDG_RUNTIME_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME"})
    if (!sets(extra_env, k)) a.insert(a.end(), {"-u", k});
  if (!sets(extra_env, "HOME")) a.push_back("HOME=" + u->home);
  if (!sets(extra_env, "USER")) a.push_back("USER=" + u->name);
  if (!sets(extra_env, "LOGNAME")) a.push_back("LOGNAME=" + u->name);
  a.insert(a.end(), argv.begin(), argv.end());
  return a;
}

}  // namespace cbuild::test
