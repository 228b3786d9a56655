#include "oci/base/owner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace cbuild {
namespace fs = std::filesystem;

namespace {

// The live ProcessScratch directories: objects for the same directory share it (builds run
// at once in one process), the last one removes it; the newest is TempDir's default parent.
struct LiveScratch {
  fs::path path;
  UniqueFd lock;
  int users = 0;
};
std::mutex g_scratch_mu;
std::vector<LiveScratch> g_scratch;

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") out.emplace_back(n);
  }
  ::closedir(d);
  return out;
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<std::uint64_t>(c - '0');
  return v;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(std::string_view s) {
  auto oct = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += s[i];
  }
  return out;
}

void warn(const std::string& what, const std::exception& e) {
  std::fprintf(stderr, "cbuild: warning: %s: %s\n", what.c_str(), e.what());
}

// Removes one dead owner's entry `name` of `dir`.
bool reclaim_entry(const fs::path& dir, const std::string& name) {
  fs::path p = dir / name;
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return false;
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return ::unlink(p.c_str()) == 0;
  int raw = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) return false;
  UniqueFd fd(raw);
  // A lease or ingest file still locked is held by some process of the owner's that survived
  // it: what that process holds stays until it is gone too.
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return false;
  if (S_ISREG(st.st_mode)) return ::unlink(p.c_str()) == 0;
  detach_mounts_under(p);
  remove_tree(p);
  return true;
}

}  // namespace

std::string OwnerStamp::str() const { return std::to_string(pid) + "." + std::to_string(start); }

OwnerStamp OwnerStamp::self() {
  static const OwnerStamp me = [] {
    pid_t pid = ::getpid();
    auto start = process_start_time(pid);
    if (!start) throw Error(ErrorKind::Internal, "cannot read this process's start time from /proc/self/stat");
    return OwnerStamp{pid, *start};
  }();
  // A forked child is another process with another identity.
  if (me.pid != ::getpid()) {
    pid_t pid = ::getpid();
    return OwnerStamp{pid, process_start_time(pid).value_or(0)};
  }
  return me;
}

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  fs::path p = "/proc/" + std::to_string(pid) + "/stat";
  std::optional<std::string> text;
  try {
    text = read_file_if_exists(p, 4096);
  } catch (const Error& e) {
    if (e.sys_errno() == ESRCH) return std::nullopt;
    throw;
  }
  if (!text) return std::nullopt;
  // "pid (comm) state ppid …": comm may hold spaces and parentheses; fields count from the last ')'.
  auto close = text->rfind(')');
  if (close == std::string::npos) throw Error(ErrorKind::Internal, "malformed " + p.string());
  std::string_view rest = std::string_view(*text).substr(close + 1);
  std::vector<std::string_view> fields;
  std::size_t at = 0;
  while (at < rest.size() && fields.size() < 20) {
    while (at < rest.size() && rest[at] == ' ') ++at;
    std::size_t end = rest.find(' ', at);
    if (end == std::string_view::npos) end = rest.size();
    if (end > at) fields.push_back(rest.substr(at, end - at));
    at = end;
  }
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  if (fields.size() < 20) throw Error(ErrorKind::Internal, "malformed " + p.string());
  // A zombie has finished: nothing it holds is live any more.
  if (fields[0] == "Z" || fields[0] == "X") return std::nullopt;
  auto start = parse_number(fields[19]);
  if (!start) throw Error(ErrorKind::Internal, "malformed " + p.string());
  return start;
}

bool owner_alive(const OwnerStamp& owner) noexcept {
  if (owner.pid <= 0) return false;
  try {
    auto start = process_start_time(owner.pid);
    return start && *start == owner.start;
  } catch (...) {
    return true;
  }
}

std::optional<OwnerStamp> stamp_in_name(std::string_view name) {
  auto a = name.find('-');
  if (a == std::string_view::npos || a == 0) return std::nullopt;
  std::string_view rest = name.substr(a + 1);
  rest = rest.substr(0, rest.find('-'));
  auto dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto pid = parse_number(rest.substr(0, dot));
  auto start = parse_number(rest.substr(dot + 1));
  if (!pid || !start || *pid == 0 || *pid > 0x7fffffff) return std::nullopt;
  return OwnerStamp{static_cast<pid_t>(*pid), *start};
}

std::size_t detach_mounts_under(const fs::path& dir) {
  char* real = ::realpath(dir.c_str(), nullptr);
  if (!real) return 0;
  std::string base = real;
  std::free(real);
  std::string info = read_file("/proc/self/mountinfo", 64u << 20);
  std::vector<std::string> targets;
  std::size_t at = 0;
  while (at < info.size()) {
    std::size_t nl = info.find('\n', at);
    if (nl == std::string::npos) nl = info.size();
    std::string_view line = std::string_view(info).substr(at, nl - at);
    at = nl + 1;
    // "id parent major:minor root mountpoint …": the fifth field.
    std::size_t pos = 0;
    for (int i = 0; i < 4 && pos != std::string_view::npos; ++i) {
      pos = line.find(' ', pos);
      if (pos != std::string_view::npos) ++pos;
    }
    if (pos == std::string_view::npos) continue;
    std::size_t end = line.find(' ', pos);
    std::string target = unescape_mountinfo(line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    if (target == base || (target.size() > base.size() && target.starts_with(base) && target[base.size()] == '/'))
      targets.push_back(std::move(target));
  }
  // Deepest first; a mount stacked over another at the same point appears later: reverse order.
  std::stable_sort(targets.begin(), targets.end(), [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
  std::size_t n = 0;
  for (const auto& t : targets)
    if (::umount2(t.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) ++n;
  return n;
}

std::size_t reclaim_dead_entries(const fs::path& dir) noexcept {
  std::size_t n = 0;
  OwnerStamp me{};
  try {
    me = OwnerStamp::self();
  } catch (...) {
    return 0;  // without /proc every owner would look dead: judge nobody
  }
  for (const auto& name : names_in(dir)) {
    auto owner = stamp_in_name(name);
    if (!owner || *owner == me || owner_alive(*owner)) continue;
    try {
      if (reclaim_entry(dir, name)) ++n;
    } catch (const std::exception& e) {
      warn("cannot reclaim " + quote((dir / name).string()) + " of a dead process", e);
    }
  }
  return n;
}

std::size_t remove_dead_atomic_temps(const fs::path& dir) noexcept {
  std::size_t n = 0;
  try {
    OwnerStamp::self();  // without /proc every owner would look dead: judge nobody
  } catch (...) {
    return 0;
  }
  for (const auto& name : names_in(dir)) {
    if (name.empty() || name[0] != '.') continue;
    auto tmp = name.rfind(".tmp-");
    if (tmp == std::string::npos) continue;
    auto owner = stamp_in_name(std::string_view(name).substr(tmp + 1));
    if (!owner || owner_alive(*owner)) continue;
    fs::path p = dir / name;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::unlink(p.c_str()) == 0) ++n;
  }
  return n;
}

ProcessScratch::ProcessScratch(const fs::path& parent) : path_(parent / ("proc-" + OwnerStamp::self().str())) {
  std::lock_guard g(g_scratch_mu);
  for (auto& live : g_scratch)
    if (live.path == path_) {
      ++live.users;
      return;
    }
  if (::mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir", path_.string());
  UniqueFd lock = open_file(path_, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) throw_errno("lock", path_.string());
  g_scratch.push_back(LiveScratch{path_, std::move(lock), 1});
}

ProcessScratch::~ProcessScratch() {
  {
    std::lock_guard g(g_scratch_mu);
    auto it = std::find_if(g_scratch.begin(), g_scratch.end(), [&](const LiveScratch& l) { return l.path == path_; });
    if (it == g_scratch.end() || --it->users > 0) return;
    // Removed while still locked, so no other process takes it for a dead owner's meanwhile.
    try {
      remove_tree(path_);
    } catch (const std::exception& e) {
      warn("cannot remove scratch directory " + quote(path_.string()), e);
    }
    g_scratch.erase(it);
  }
}

fs::path default_temp_parent() {
  {
    std::lock_guard g(g_scratch_mu);
    if (!g_scratch.empty()) return g_scratch.back().path;
  }
  const char* t = std::getenv("TMPDIR");
  return (t && *t) ? fs::path(t) : fs::path("/tmp");
}

}  // namespace cbuild
