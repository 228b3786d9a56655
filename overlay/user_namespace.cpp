#include "overlay/user_namespace.h"

#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "oci/base/error.h"
#include "overlay/userns_keeper.h"

namespace cbuild::overlay {
namespace {

std::optional<IdMapping>& mapping_slot() {
  static std::optional<IdMapping> m;
  return m;
}

// -1: not computed yet; else the XattrNamespace value.
std::atomic<int> g_xattr_ns{-1};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool parse_u32(std::string_view s, std::uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/bin:/bin:/usr/sbin:/sbin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || dir[0] != '/') continue;
    std::string p = dir + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

void write_proc(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("open", path);
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) throw_errno("write", path, n < 0 ? err : EIO);
}

std::vector<std::string> map_argv(const std::string& program, pid_t pid, std::uint32_t outer,
                                  const std::vector<SubordinateRange>& ranges) {
  std::vector<std::string> a{program, std::to_string(pid), "0", std::to_string(outer), "1"};
  std::uint64_t inside = 1;
  for (const auto& r : ranges) {
    a.push_back(std::to_string(inside));
    a.push_back(std::to_string(r.start));
    a.push_back(std::to_string(r.count));
    inside += r.count;
  }
  return a;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

[[noreturn]] void refuse_unshare(int err) {
  std::string msg = std::string("rootless mode: cannot create a user namespace (unshare: ") + std::strerror(err) +
                    "). The kernel or this container's security profile forbids them: run cbuild as root, "
                    "allow user namespaces (sysctl user.max_user_namespaces > 0, "
                    "kernel.unprivileged_userns_clone=1 or kernel.apparmor_restrict_unprivileged_userns=0 "
                    "where those exist; in a container an unconfined seccomp profile), or use --isolation=chroot";
  throw Error(ErrorKind::FailedPrecondition, msg, err);
}

// A helper: forked before unshare, so it stays in the initial user namespace where the setuid
// newuidmap/newgidmap may write our maps. It waits for "go" (the parent has unshared), then
// becomes the program, with its output into `out`. There is one helper per map, so both run
// at once (each is a setuid exec costing milliseconds, which every command a user runs waits
// for) and the parent waits for them directly.
[[noreturn]] void run_helper(int go, int out, const std::vector<std::string>& argv) {
  char c;
  ssize_t n;
  do n = ::read(go, &c, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(2);
  // {"", FILE, TEXT}: a map this (privileged) helper writes itself.
  if (argv.size() == 3 && argv[0].empty()) {
    int fd = ::open(argv[1].c_str(), O_WRONLY | O_CLOEXEC);
    const std::string& text = argv[2];
    if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      ::dprintf(out, "writing %s: %s\n", argv[1].c_str(), std::strerror(errno));
      ::_exit(1);
    }
    ::_exit(0);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::dup2(out, 1);
  ::dup2(out, 2);
  ::execv(args[0], args.data());
  ::dprintf(out, "%s: %s\n", args[0], std::strerror(errno));
  ::_exit(127);
}

// The lines of a uid_map/gid_map for `m`: 0 → the outer id, then the ranges from 1 on.
std::string map_text(std::uint32_t outer, const std::vector<SubordinateRange>& ranges) {
  std::string text = "0 " + std::to_string(outer) + " 1\n";
  std::uint64_t inside = 1;
  for (const auto& r : ranges) {
    text += std::to_string(inside) + " " + std::to_string(r.start) + " " + std::to_string(r.count) + "\n";
    inside += r.count;
  }
  return text;
}

// Root of the current namespace (a container's root without CAP_SYS_ADMIN) keeps every id it
// has: the new namespace maps them onto themselves, so owners in layers stay what they are.
// Only a namespace whose ids run from 0 without a gap can be mapped so.
std::vector<SubordinateRange> identity_rest(const std::string& map_file) {
  std::istringstream lines(read_text(map_file));
  std::uint64_t inside = 0, outside = 0, count = 0, next = 0;
  while (lines >> inside >> outside >> count) {
    if (inside != next)
      throw Error(ErrorKind::FailedPrecondition,
                  "entering a user namespace as root: " + map_file + " maps no contiguous ids from 0; use " +
                      "--isolation=chroot");
    next = inside + count;
  }
  if (next < 2) return {};
  return {SubordinateRange{1, static_cast<std::uint32_t>(std::min<std::uint64_t>(next - 1, 0xfffffffeu))}};
}

// `flags`: CLONE_NEWUSER, with CLONE_NEWNS unless the caller makes the mount namespace later.
void map_with_helpers(const IdMapping& m, const std::string& uidmap, const std::string& gidmap,
                      int flags = CLONE_NEWUSER | CLONE_NEWNS) {
  pid_t self = ::getpid();
  const std::string proc = "/proc/" + std::to_string(self);
  // Root writes the maps itself (it holds CAP_SETUID/CAP_SETGID where they are checked);
  // anybody else needs the setuid helpers, which check /etc/subuid and /etc/subgid.
  auto uid_argv = uidmap.empty() ? std::vector<std::string>{"", proc + "/uid_map", map_text(m.outer_uid, m.uid_ranges)}
                                 : map_argv(uidmap, self, m.outer_uid, m.uid_ranges);
  auto gid_argv = gidmap.empty() ? std::vector<std::string>{"", proc + "/gid_map", map_text(m.outer_gid, m.gid_ranges)}
                                 : map_argv(gidmap, self, m.outer_gid, m.gid_ranges);
  int go[2], out[2];
  if (::pipe2(go, O_CLOEXEC) != 0) throw_errno("pipe", "");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(go[0]);
    ::close(go[1]);
    throw_errno("pipe", "", err);
  }
  std::vector<std::pair<pid_t, const std::vector<std::string>*>> helpers;
  auto wait_helpers = [&helpers] {
    std::vector<int> status;
    for (const auto& h : helpers) {
      int st = 0;
      while (::waitpid(h.first, &st, 0) < 0 && errno == EINTR) {
      }
      status.push_back(st);
    }
    return status;
  };
  for (const auto* argv : {&uid_argv, &gid_argv}) {
    pid_t pid = ::fork();
    if (pid < 0) {
      int err = errno;
      for (int fd : {go[0], go[1], out[0], out[1]}) ::close(fd);  // without "go" a helper exits
      wait_helpers();
      throw_errno("fork", "", err);
    }
    if (pid == 0) {
      ::close(go[1]);
      ::close(out[0]);
      run_helper(go[0], out[1], *argv);
    }
    helpers.emplace_back(pid, argv);
  }
  ::close(go[0]);
  ::close(out[1]);
  int unshare_err = ::unshare(flags) == 0 ? 0 : errno;
  if (unshare_err == 0) {
    const char c[2] = {1, 1};  // one byte each
    while (::write(go[1], c, sizeof c) < 0 && errno == EINTR) {
    }
  }
  ::close(go[1]);
  std::string text;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  std::vector<int> status = wait_helpers();
  if (unshare_err) refuse_unshare(unshare_err);
  bool failed = false;
  for (std::size_t i = 0; i < helpers.size(); ++i) {
    if (WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0) continue;
    failed = true;
    if (!helpers[i].second->front().empty()) text += "'" + joined(*helpers[i].second) + "' failed\n";
  }
  if (failed) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    for (char& ch : text)
      if (ch == '\n') ch = ';';
    throw Error(ErrorKind::FailedPrecondition,
                "entering a user namespace: mapping its ids failed: " +
                    (text.empty() ? std::string("newuidmap/newgidmap exited abnormally") : text));
  }
}

class ClosingFd {
 public:
  explicit ClosingFd(int fd) : fd(fd) {}
  ~ClosingFd() {
    if (fd >= 0) ::close(fd);
  }
  ClosingFd(const ClosingFd&) = delete;
  ClosingFd& operator=(const ClosingFd&) = delete;
  const int fd;
};

// The usual way through the helpers, but first joining the namespace a keeper holds when it
// maps exactly these ids, and leaving one behind for the next command otherwise
// (userns_keeper.h). Without a usable state dir, or without its lock, this is the usual way.
void map_with_keeper(const IdMapping& m, const std::string& uidmap, const std::string& gidmap) {
  ClosingFd dir(keeper_state_dir());
  if (dir.fd < 0) return map_with_helpers(m, uidmap, gidmap);
  const std::string uid_map = map_text(m.outer_uid, m.uid_ranges), gid_map = map_text(m.outer_gid, m.gid_ranges);
  if (try_join_keeper(dir.fd, uid_map, gid_map)) return;
  ClosingFd lock(lock_keeper_state(dir.fd));
  if (lock.fd < 0) return map_with_helpers(m, uidmap, gidmap);
  if (try_join_keeper(dir.fd, uid_map, gid_map)) return;  // made while we waited for the lock
  stop_recorded_keeper(dir.fd);
  map_with_helpers(m, uidmap, gidmap, CLONE_NEWUSER);
  // Forked before the mount namespace exists, the keeper holds none of this command's mounts.
  start_keeper(dir.fd, uid_map, gid_map);
  if (::unshare(CLONE_NEWNS) != 0) throw_errno("unshare(CLONE_NEWNS)", "");
}

void map_single(const IdMapping& m) {
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) refuse_unshare(errno);
  // An unprivileged process may map only its own ids, and a gid map only after setgroups is
  // denied (else dropping a group could grant access).
  write_proc("/proc/self/setgroups", "deny");
  write_proc("/proc/self/uid_map", "0 " + std::to_string(m.outer_uid) + " 1\n");
  write_proc("/proc/self/gid_map", "0 " + std::to_string(m.outer_gid) + " 1\n");
}

}  // namespace

std::uint64_t IdMapping::uid_count() const noexcept {
  std::uint64_t n = 1;
  for (const auto& r : uid_ranges) n += r.count;
  return n;
}

std::uint64_t IdMapping::gid_count() const noexcept {
  std::uint64_t n = 1;
  for (const auto& r : gid_ranges) n += r.count;
  return n;
}

std::vector<SubordinateRange> parse_subordinate_ids(std::string_view text, std::string_view name, std::uint32_t id) {
  std::vector<SubordinateRange> out;
  std::string id_text = std::to_string(id);
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line[0] == '#') continue;
    std::size_t c1 = line.find(':');
    std::size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view who = line.substr(0, c1);
    if (who != id_text && (name.empty() || who != name)) continue;
    SubordinateRange r;
    std::string_view count = line.substr(c2 + 1);
    while (!count.empty() && (count.back() == ' ' || count.back() == '\r')) count.remove_suffix(1);
    if (!parse_u32(line.substr(c1 + 1, c2 - c1 - 1), r.start) || !parse_u32(count, r.count) || r.count == 0)
      continue;
    out.push_back(r);
  }
  return out;
}

static IdMapping finish_entering(const IdMapping& m);

IdMapping enter_user_namespace(const UserNamespaceOptions& options) {
  if (mapping_slot()) throw Error(ErrorKind::Internal, "rootless mode: enter_user_namespace called twice");
  IdMapping m;
  m.outer_uid = ::getuid();
  m.outer_gid = ::getgid();
  std::string name;
  {
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(m.outer_uid, &pw, buf.data(), buf.size(), &found) == 0 && found) name = found->pw_name;
  }
  if (m.outer_uid == 0) {
    m.kind = IdMapping::Kind::Range;
    m.uid_ranges = identity_rest("/proc/self/uid_map");
    m.gid_ranges = identity_rest("/proc/self/gid_map");
    map_with_helpers(m, "", "");
    return finish_entering(m);
  }
  m.uid_ranges = parse_subordinate_ids(read_text(options.subuid_file), name, m.outer_uid);
  m.gid_ranges = parse_subordinate_ids(read_text(options.subgid_file), name, m.outer_uid);
  std::string uidmap = find_program(options.newuidmap);
  std::string gidmap = find_program(options.newgidmap);
  if (m.uid_ranges.empty() || m.gid_ranges.empty() || uidmap.empty() || gidmap.empty()) {
    m.kind = IdMapping::Kind::Single;
    m.uid_ranges.clear();
    m.gid_ranges.clear();
    map_single(m);
  } else {
    m.kind = IdMapping::Kind::Range;
    map_with_keeper(m, uidmap, gidmap);
  }
  return finish_entering(m);
}

static IdMapping finish_entering(const IdMapping& m) {
  // We are root of the new namespace from here: take its ids everywhere.
  if (::setresgid(0, 0, 0) != 0) throw_errno("setresgid", "0");
  if (::setresuid(0, 0, 0) != 0) throw_errno("setresuid", "0");
  // Nothing mounted from now on may propagate back (a namespace made by an unprivileged user
  // gets slave mounts anyway; private also stops the host's later mounts from arriving).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) throw_errno("make / private", "/");
  g_xattr_ns.store(-1);
  mapping_slot() = m;
  return m;
}

const std::optional<IdMapping>& current_id_mapping() noexcept { return mapping_slot(); }

bool in_initial_user_namespace() {
  std::string map = read_text("/proc/self/uid_map");
  std::istringstream in(map);
  std::uint64_t inside = 1, outside = 1, count = 0;
  if (!(in >> inside >> outside >> count)) return true;  // no user namespaces in this kernel
  std::uint64_t more;
  return inside == 0 && outside == 0 && count == 4294967295ULL && !(in >> more);
}

bool gid_is_mapped(gid_t gid) {
  std::istringstream in(read_text("/proc/self/gid_map"));
  std::uint64_t inside, outside, count;
  while (in >> inside >> outside >> count)
    if (gid >= inside && gid - inside < count) return true;
  return false;
}

std::uint32_t nearest_mapped_id(std::uint32_t id, bool is_gid) {
  std::istringstream in(read_text(is_gid ? "/proc/self/gid_map" : "/proc/self/uid_map"));
  std::uint64_t inside, outside, count;
  std::optional<std::uint64_t> below, lowest;
  while (in >> inside >> outside >> count) {
    if (count == 0) continue;
    if (id >= inside && id - inside < count) return id;
    if (inside < id) below = std::max(below.value_or(0), std::min<std::uint64_t>(inside + count - 1, id));
    lowest = std::min(lowest.value_or(inside), inside);
  }
  return static_cast<std::uint32_t>(below ? *below : lowest.value_or(0));
}

XattrNamespace overlay_xattr_namespace() {
  int v = g_xattr_ns.load();
  if (v < 0) {
    v = static_cast<int>(in_initial_user_namespace() ? XattrNamespace::Trusted : XattrNamespace::User);
    g_xattr_ns.store(v);
  }
  return static_cast<XattrNamespace>(v);
}

std::string single_mapping_notice(const IdMapping& m) {
  return "rootless mode with a single id: no /etc/subuid and /etc/subgid ranges (or no newuidmap/newgidmap from "
         "package uidmap) for uid " +
         std::to_string(m.outer_uid) +
         ", so only your own user is mapped, as root. Every file in the build is owned by 0, and a chown or "
         "USER to any other id fails (files of other owners in base images keep them, see docs/rootless.md). "
         "Ask for a range (e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`) to give "
         "files other owners.";
}

std::optional<std::string> rootless_limit_message(std::string_view operation, int errno_value, std::string_view path,
                                                  std::uint32_t uid, std::uint32_t gid) {
  if (overlay_xattr_namespace() != XattrNamespace::User) return std::nullopt;
  const auto& m = current_id_mapping();
  std::string p(path);
  if (operation == "mknod" && errno_value == EPERM)
    return "cannot create device node \"" + p +
           "\": a rootless build runs in a user namespace, where only root of the host may create device "
           "nodes; build this image as root";
  if (operation == "chown" && errno_value == EINVAL) {
    std::string range;
    if (m && m->kind == IdMapping::Kind::Single) range = " (only 0: no subordinate ids)";
    else if (m)
      range = " (uids 0-" + std::to_string(m->uid_count() - 1) + ", gids 0-" + std::to_string(m->gid_count() - 1) + ")";
    return "cannot give \"" + p + "\" the owner " + std::to_string(uid) + ":" + std::to_string(gid) +
           ": it is outside the ids this rootless build's user namespace maps" + range +
           "; grant a larger range in /etc/subuid and /etc/subgid, or build as root";
  }
  if (operation == "setxattr" && errno_value == EPERM)
    return "cannot set an extended attribute on \"" + p +
           "\": a rootless build cannot write trusted.* or security.* attributes; build this image as root";
  return std::nullopt;
}

}  // namespace cbuild::overlay
