#include "overlay/userns_keeper.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <sstream>
#include <vector>

#include "oci/base/error.h"

namespace cbuild::overlay {
namespace {

constexpr const char* kRecord = "userns";
constexpr const char* kRecordTmp = "userns.tmp";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string read_fd(int fd) {
  std::string s;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
    if (s.size() > 65536) break;
  }
  return s;
}

std::string read_path(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  return fd.get() < 0 ? std::string() : read_fd(fd.get());
}

// "inside outside count" triples, one line each, whatever the spacing of the source.
std::string normal_map(const std::string& text) {
  std::istringstream in(text);
  std::uint64_t a, b, c;
  std::string out;
  while (in >> a >> b >> c) out += std::to_string(a) + " " + std::to_string(b) + " " + std::to_string(c) + "\n";
  return out;
}

// Field 22 of /proc/PID/stat: the process's start time in clock ticks after boot.
std::optional<std::uint64_t> start_time(pid_t pid) {
  std::string stat = read_path("/proc/" + std::to_string(pid) + "/stat");
  std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(stat.substr(close + 1));
  std::string field;
  for (int n = 3; in >> field; ++n)
    if (n == 22) {
      char* end = nullptr;
      std::uint64_t v = std::strtoull(field.c_str(), &end, 10);
      if (end && *end == 0) return v;
      return std::nullopt;
    }
  return std::nullopt;
}

struct Record {
  pid_t pid = 0;
  std::uint64_t start = 0;
  std::uint64_t userns = 0;
};

std::optional<Record> read_record(int state_dir) {
  Fd fd(::openat(state_dir, kRecord, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid())
    return std::nullopt;
  std::istringstream in(read_fd(fd.get()));
  Record r;
  bool pid = false, start = false, userns = false;
  std::string key;
  while (in >> key) {
    if (key == "pid") pid = static_cast<bool>(in >> r.pid);
    else if (key == "start") start = static_cast<bool>(in >> r.start);
    else if (key == "userns") userns = static_cast<bool>(in >> r.userns);
    std::string rest;
    std::getline(in, rest);
  }
  if (!pid || !start || !userns || r.pid <= 1) return std::nullopt;
  return r;
}

std::uint64_t own_userns_inode() {
  struct stat st {};
  return ::stat("/proc/self/ns/user", &st) == 0 ? st.st_ino : 0;
}

// An fd of the recorded keeper's user namespace when the record still names it and it is
// this user's child namespace of ours; -1 otherwise. The start time is read again after the
// namespace is opened, so a pid reused in between is caught.
int open_verified_userns(const Record& r) {
  if (start_time(r.pid) != r.start) return -1;
  std::string proc = "/proc/" + std::to_string(r.pid);
  int fd = ::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  uid_t owner = static_cast<uid_t>(-1);
  bool ok = ::fstat(fd, &st) == 0 && st.st_ino == r.userns && ::ioctl(fd, NS_GET_OWNER_UID, &owner) == 0 &&
            owner == ::getuid();
  if (ok) {
    Fd parent(::ioctl(fd, NS_GET_PARENT));
    struct stat pst {};
    ok = parent.get() >= 0 && ::fstat(parent.get(), &pst) == 0 && pst.st_ino == own_userns_inode();
  }
  if (ok) ok = start_time(r.pid) == r.start;
  if (!ok) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Stops the keeper `r` names when it verifiably is this user's (through a pidfd, so the
// signal cannot reach a process that took the pid since).
void stop_keeper(const Record& r) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, r.pid, 0));
  if (pidfd < 0) return;
  int ns = open_verified_userns(r);
  if (ns >= 0) {
    ::close(ns);
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0);
  }
  ::close(pidfd);
}

[[noreturn]] void keeper_main() {
  sigset_t blocked;
  ::sigfillset(&blocked);
  ::sigdelset(&blocked, SIGTERM);
  ::signal(SIGTERM, SIG_DFL);
  ::sigprocmask(SIG_SETMASK, &blocked, nullptr);
  if (::chdir("/") != 0) ::_exit(1);
  ::syscall(SYS_close_range, 0u, ~0u, 0u);
  ::prctl(PR_SET_NAME, "cbuild-userns", 0, 0, 0);
  for (;;) ::pause();
}

}  // namespace

int keeper_state_dir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (!runtime || runtime[0] != '/') return -1;
  auto usable = [](int fd) {
    struct stat st {};
    return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid() &&
           (st.st_mode & 022) == 0;
  };
  Fd base(::open(runtime, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!usable(base.get())) return -1;
  if (::mkdirat(base.get(), "cbuild", 0700) != 0 && errno != EEXIST) return -1;
  int dir = ::openat(base.get(), "cbuild", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (!usable(dir)) {
    if (dir >= 0) ::close(dir);
    return -1;
  }
  return dir;
}

bool try_join_keeper(int state_dir, const std::string& uid_map, const std::string& gid_map) {
  auto r = read_record(state_dir);
  if (!r) return false;
  Fd ns(open_verified_userns(*r));
  if (ns.get() < 0) return false;
  std::string proc = "/proc/" + std::to_string(r->pid);
  if (normal_map(read_path(proc + "/uid_map")) != normal_map(uid_map) ||
      normal_map(read_path(proc + "/gid_map")) != normal_map(gid_map))
    return false;
  if (start_time(r->pid) != r->start) return false;  // the maps read were the keeper's
  if (::setns(ns.get(), CLONE_NEWUSER) != 0) return false;
  // Past setns there is no way back: a mount namespace is what every command has, so not
  // getting one is the command's failure (it would otherwise mount into the host's).
  if (::unshare(CLONE_NEWNS) != 0) throw_errno("unshare(CLONE_NEWNS) in the joined user namespace", "");
  return true;
}

int lock_keeper_state(int state_dir) {
  int fd = ::openat(state_dir, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  for (int i = 0; i < 50; ++i) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
    if (errno != EWOULDBLOCK && errno != EINTR) break;
    struct timespec ts {0, 10 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
  ::close(fd);
  return -1;
}

void start_keeper(int state_dir, const std::string& uid_map, const std::string& gid_map) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return;
  pid_t middle = ::fork();
  if (middle < 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return;
  }
  if (middle == 0) {
    // Detached: a session of its own, a child of init (or the subreaper), not of this command.
    ::setsid();
    pid_t keeper = ::fork();
    if (keeper == 0) keeper_main();
    ::_exit(keeper > 0 && ::write(pipe_fds[1], &keeper, sizeof keeper) == sizeof keeper ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  pid_t keeper = 0;
  Fd in(pipe_fds[0]);
  ssize_t n;
  do n = ::read(in.get(), &keeper, sizeof keeper);
  while (n < 0 && errno == EINTR);
  int st = 0;
  while (::waitpid(middle, &st, 0) < 0 && errno == EINTR) {
  }
  if (n != sizeof keeper || keeper <= 1) return;

  Record made{keeper, 0, 0};
  auto start = start_time(keeper);
  struct stat ns {};
  std::uint64_t own = own_userns_inode();
  bool ok = start && ::stat(("/proc/" + std::to_string(keeper) + "/ns/user").c_str(), &ns) == 0 && ns.st_ino == own;
  std::string text;
  if (ok) {
    made.start = *start;
    made.userns = ns.st_ino;
    auto one_line = [](std::string m) {
      m = normal_map(m);
      if (!m.empty()) m.pop_back();
      for (char& c : m)
        if (c == '\n') c = ';';
      return m;
    };
    text = "pid " + std::to_string(made.pid) + "\nstart " + std::to_string(made.start) + "\nuserns " +
           std::to_string(made.userns) + "\nuid_map " + one_line(uid_map) + "\ngid_map " + one_line(gid_map) + "\n";
    ::unlinkat(state_dir, kRecordTmp, 0);
    Fd out(::openat(state_dir, kRecordTmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    ok = out.get() >= 0 && ::write(out.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  }
  if (ok) ok = ::renameat(state_dir, kRecordTmp, state_dir, kRecord) == 0;
  if (!ok) {
    // Unrecorded, nobody would join it or know to stop it.
    ::unlinkat(state_dir, kRecordTmp, 0);
    ::kill(keeper, SIGKILL);
  }
}

void stop_recorded_keeper(int state_dir) {
  if (auto r = read_record(state_dir)) stop_keeper(*r);
}

}  // namespace cbuild::overlay
