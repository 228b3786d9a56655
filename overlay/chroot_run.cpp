#include "overlay/chroot_run.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/safe_path.h"
#include "overlay/sys/syscalls.h"
#include "overlay/user_db.h"

namespace cbuild::overlay {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kInitFiles[] = {"etc/hosts", "etc/resolv.conf", "etc/hostname"};
struct DevNode {
  const char* name;
  unsigned major, minor;
};
constexpr DevNode kDevNodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
                                 {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};

// A read-only bind of a host directory straight under /dev (RUN here-document scripts at
// /dev/pipes): /dev never reaches a layer, so its files can be copied in instead of mounted.
bool copyable_bind(const BindMount& b) {
  std::string t = clean_path(b.target);
  if (!b.readonly || b.source_fd >= 0 || t.rfind("dev/", 0) != 0 || t.find('/', 4) != std::string::npos) return false;
  std::error_code ec;
  return std::filesystem::is_directory(b.source, ec) && !std::filesystem::is_symlink(b.source, ec);
}

enum class Step : int { Chroot = 1, Chdir, Groups, Gid, Uid, Stdio, Exec };

const char* step_name(Step s) {
  switch (s) {
    case Step::Chroot: return "chroot";
    case Step::Chdir: return "chdir to";
    case Step::Groups: return "setgroups";
    case Step::Gid: return "setgid";
    case Step::Uid: return "setuid";
    case Step::Stdio: return "set up stdio";
    case Step::Exec: return "exec";
  }
  return "unknown step";
}

bool env_has(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& e : env)
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') return true;
  return false;
}

std::string env_value(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& e : env)
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') return e.substr(key.size() + 1);
  return "";
}

// What the rootfs gets for one run and gives back afterwards (see chroot_run.h).
class Furniture {
 public:
  Furniture(int root, const RunSpec& spec) : root_(root) {
    for (const char* d : {"proc", "sys", "dev"}) {
      if (!sys::try_lstatat(root_, d, d)) {
        sys::mkdirat(root_, d, 0755, d);
        created_dirs_.push_back(d);
      }
    }
    if (auto dev = sys::try_lstatat(root_, "dev", "dev"); dev && S_ISDIR(dev->st_mode)) {
      dev_times_ = *dev;
      UniqueFd devfd = sys::openat(root_, "dev", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, "dev");
      for (const auto& n : kDevNodes) {
        if (sys::try_lstatat(devfd.get(), n.name, n.name)) continue;
        // Without CAP_MKNOD the command finds no /dev/null and says so itself.
        if (::mknodat(devfd.get(), n.name, S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) continue;
        ::fchmodat(devfd.get(), n.name, 0666, 0);
        created_nodes_.push_back(n.name);
      }
      for (const auto& b : spec.binds) {
        std::string leaf = clean_path(b.target).substr(4);
        if (sys::try_lstatat(devfd.get(), leaf, b.target))
          throw Error(ErrorKind::FailedPrecondition, "sandbox: " + quote(b.target) + " exists in the image; chroot "
                                                     "isolation cannot put the step's files there");
        sys::mkdirat(devfd.get(), leaf, 0755, b.target);
        created_nodes_.push_back(leaf);
        UniqueFd dir = sys::openat(devfd.get(), leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, b.target);
        for (const auto& e : std::filesystem::directory_iterator(b.source)) {
          if (!e.is_regular_file() || e.is_symlink()) continue;
          std::string name = e.path().filename().string();
          struct stat st = sys::fstatat(AT_FDCWD, e.path().string(), AT_SYMLINK_NOFOLLOW, e.path().string());
          UniqueFd out = sys::openat(dir.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, st.st_mode & 0777, name);
          std::string content = read_file(e.path());
          if (::write(out.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
            throw_errno("write", b.target + "/" + name);
          sys::fchmod(out.get(), st.st_mode & 0777, name);
        }
      }
    } else if (!spec.binds.empty()) {
      throw Error(ErrorKind::FailedPrecondition, "sandbox: /dev is not a directory in the image; chroot isolation "
                                                 "cannot put the step's files there");
    }
    if (spec.init_files.empty()) return;
    for (const char* f : kInitFiles) {
      std::filesystem::path src = spec.init_files / f;
      std::error_code ec;
      if (!std::filesystem::exists(src, ec)) continue;
      std::string content = read_file(src);
      auto etc = sys::try_lstatat(root_, "etc", "etc");
      if (!etc) sys::mkdirat(root_, "etc", 0755, "etc");  // stays, as the sandbox's stub parents do
      else if (!S_ISDIR(etc->st_mode)) continue;
      auto st = sys::try_lstatat(root_, f, f);
      if (st && !S_ISREG(st->st_mode)) continue;
      Saved s{f, st.has_value(), {}, {}};
      if (st) {
        s.st = *st;
        s.content = read_at(f);
      }
      saved_.push_back(std::move(s));
      write_at(f, content, st ? (st->st_mode & 07777) : 0644);
    }
  }
  Furniture(const Furniture&) = delete;
  Furniture& operator=(const Furniture&) = delete;
  ~Furniture() {
    try {
      restore();
    } catch (...) {
    }
  }

  void restore() {
    if (restored_) return;
    restored_ = true;
    for (const auto& s : saved_) {
      if (!s.existed) {
        if (::unlinkat(root_, s.path.c_str(), 0) != 0 && errno != ENOENT) throw_errno("unlink", s.path);
        continue;
      }
      write_at(s.path, s.content, s.st.st_mode & 07777);
      sys::fchownat_nofollow(root_, s.path, s.st.st_uid, s.st.st_gid, s.path);
      ::fchmodat(root_, s.path.c_str(), s.st.st_mode & 07777, 0);
      struct timespec times[2] = {s.st.st_atim, s.st.st_mtim};
      if (::utimensat(root_, s.path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("utimensat", s.path);
    }
    if (!created_nodes_.empty()) {
      UniqueFd devfd = sys::openat(root_, "dev", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, "dev");
      for (const auto& n : created_nodes_) sys::remove_all_at(devfd.get(), n, n);
      struct timespec times[2] = {dev_times_.st_atim, dev_times_.st_mtim};
      ::futimens(devfd.get(), times);
    }
    for (const auto& d : created_dirs_) sys::remove_all_at(root_, d, d);
  }

 private:
  struct Saved {
    std::string path;
    bool existed;
    struct stat st;
    std::string content;
  };

  std::string read_at(const std::string& path) {
    UniqueFd fd = sys::openat(root_, path, O_RDONLY | O_NOFOLLOW, 0, path);
    std::string out;
    char buf[8192];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("read", path);
      if (n == 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

  void write_at(const std::string& path, const std::string& content, mode_t mode) {
    UniqueFd fd = sys::openat(root_, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode, path);
    std::size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("write", path);
      done += static_cast<std::size_t>(n);
    }
  }

  int root_;
  std::vector<std::string> created_dirs_;
  std::vector<std::string> created_nodes_;
  struct stat dev_times_ {};
  std::vector<Saved> saved_;
  bool restored_ = false;
};

struct ChildError {
  int step = 0;
  int err = 0;
};

[[noreturn]] void child_fail(int fd, Step step, int err) {
  ChildError e{static_cast<int>(step), err};
  (void)!::write(fd, &e, sizeof e);
  ::_exit(127);
}

}  // namespace

ExitStatus run_in_chroot(const RunSpec& spec) {
  check_cancelled();
  if (spec.argv.empty()) throw Error(ErrorKind::InvalidArgument, "sandbox: empty command");
  const char* level = " cannot be honoured with chroot isolation (it creates no namespaces and no mounts)";
  if (spec.network == NetworkMode::None)
    throw Error(ErrorKind::FailedPrecondition, std::string("--network=none") + level +
                                                   "; use --isolation=userns where user namespaces are allowed");
  for (const auto& b : spec.binds)
    if (!copyable_bind(b)) throw Error(ErrorKind::FailedPrecondition, std::string("RUN --mount") + level);
  if (!spec.tmpfs.empty() || !spec.secrets.empty())
    throw Error(ErrorKind::FailedPrecondition, std::string("RUN --mount") + level);
  if (!spec.limits.empty()) throw Error(ErrorKind::FailedPrecondition, std::string("resource limits") + level);

  const std::string rootfs = std::filesystem::absolute(spec.rootfs).string();
  UniqueFd root = sys::openat(AT_FDCWD, rootfs, O_RDONLY | O_DIRECTORY, 0, rootfs);
  ExecUser user = resolve_user_in_rootfs(spec.user, rootfs);
  const std::string cwd = "/" + clean_path(spec.cwd);
  if (cwd != "/") mkdir_in_root(root.get(), cwd, 0755);

  std::vector<std::string> env = spec.env;
  if (!env_has(env, "PATH")) env.push_back(std::string("PATH=") + kDefaultPath);
  if (!env_has(env, "HOME")) env.push_back("HOME=" + user.home);
  std::vector<std::string> candidates;
  const std::string& prog = spec.argv[0];
  if (prog.find('/') != std::string::npos) {
    candidates.push_back(prog);
  } else {
    std::string path = env_value(env, "PATH");
    for (std::size_t i = 0;;) {
      std::size_t j = path.find(':', i);
      std::string dir = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
      candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + prog);
      if (j == std::string::npos) break;
      i = j + 1;
    }
  }
  std::vector<char*> argv, envp;
  std::vector<std::string> argv_storage = spec.argv;
  for (auto& s : argv_storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<gid_t> groups = user.groups;

  UniqueFd null_fd;
  int in_fd = spec.stdin_fd;
  if (in_fd < 0) {
    null_fd = sys::openat(AT_FDCWD, "/dev/null", O_RDONLY, 0, "/dev/null");
    in_fd = null_fd.get();
  }
  int pp[2];
  if (::pipe2(pp, O_CLOEXEC) != 0) throw_errno("sandbox: pipe", "");
  UniqueFd err_r(pp[0]), err_w(pp[1]);

  Furniture furniture(root.get(), spec);
  const int out_fd = spec.stdout_fd, errfd = spec.stderr_fd, report = err_w.get();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("sandbox: fork", "");
  if (pid == 0) {
    // Only async-signal-safe calls from here: the parent may have other threads.
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (::chroot(rootfs.c_str()) != 0) child_fail(report, Step::Chroot, errno);
    if (::chdir(cwd.c_str()) != 0) child_fail(report, Step::Chdir, errno);
    if (::setgroups(groups.size(), groups.data()) != 0) child_fail(report, Step::Groups, errno);
    if (::setgid(user.gid) != 0) child_fail(report, Step::Gid, errno);
    if (::setuid(user.uid) != 0) child_fail(report, Step::Uid, errno);
    ::umask(022);
    int fds[3] = {in_fd, out_fd, errfd};
    // Move the sources above 2 first, so dup2 onto 0..2 cannot clobber one still needed.
    for (int& f : fds) {
      if (f >= 0 && f <= 2) {
        f = ::fcntl(f, F_DUPFD_CLOEXEC, 3);
        if (f < 0) child_fail(report, Step::Stdio, errno);
      }
    }
    for (int i = 0; i < 3; ++i)
      if (::dup2(fds[i], i) < 0) child_fail(report, Step::Stdio, errno);
    int last = ENOENT;
    for (const auto& c : candidates) {
      ::execve(c.c_str(), argv.data(), envp.data());
      if (errno != ENOENT && errno != ENOTDIR) last = errno;
      if (errno == EACCES) continue;
    }
    child_fail(report, Step::Exec, last);
  }
  err_w.reset();
  ChildError ce;
  ssize_t n;
  do n = ::read(err_r.get(), &ce, sizeof ce);
  while (n < 0 && errno == EINTR);

  auto started = std::chrono::steady_clock::now();
  int status = 0;
  bool timed_out = false, cancelled = false;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) throw_errno("sandbox: waitpid", "");
    if (!cancelled && !timed_out) {
      if (cancel_requested()) cancelled = true;
      else if (spec.timeout && std::chrono::steady_clock::now() - started > *spec.timeout) timed_out = true;
      if (cancelled || timed_out) ::kill(-pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(-pid, SIGKILL);  // what the command left running in its group
  furniture.restore();

  if (n == static_cast<ssize_t>(sizeof ce)) {
    Step step = static_cast<Step>(ce.step);
    if (step == Step::Exec && ce.err == ENOENT) {
      bool searched = prog.find('/') == std::string::npos;
      throw Error(ErrorKind::NotFound, "sandbox: exec " + quote(prog) +
                                           (searched ? ": executable file not found in $PATH" : ": no such file or directory"),
                  ce.err);
    }
    std::string what = step_name(step);
    if (step == Step::Chdir) what += " " + quote(cwd);
    if (step == Step::Exec) what += " " + quote(prog);
    throw Error(kind_from_errno(ce.err), "sandbox: " + what + ": " + std::strerror(ce.err), ce.err);
  }
  if (cancelled) throw Error(ErrorKind::Cancelled, "cancelled");
  if (timed_out) throw Error(ErrorKind::Timeout, "sandbox: the command timed out");
  return exit_status_of(status);
}

}  // namespace cbuild::overlay
