#include "overlay/override_stat.h"

#include <sys/sysmacros.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <vector>

#include "oci/base/error.h"

namespace cbuild::overlay {
namespace {

struct TypeName {
  mode_t type;
  std::string_view name;
};
constexpr TypeName kTypes[] = {
    {S_IFREG, "file"}, {S_IFDIR, "dir"}, {S_IFCHR, "char"}, {S_IFBLK, "block"}, {S_IFIFO, "fifo"},
};

std::string_view type_name(mode_t mode) {
  for (const auto& t : kTypes)
    if ((mode & S_IFMT) == t.type) return t.name;
  return "file";
}

std::optional<mode_t> type_of(std::string_view name) {
  for (const auto& t : kTypes)
    if (name == t.name) return t.type;
  return std::nullopt;
}

std::string octal(mode_t perm) {
  char buf[8];
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<unsigned>(perm & 07777), 8);
  std::string s(buf, r.ptr);
  while (s.size() < 4) s.insert(0, "0");
  return s;
}

template <class T>
bool number(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  std::uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v > static_cast<std::uint64_t>(T(~T(0))))
    return false;
  out = static_cast<T>(v);
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (true) {
    std::size_t j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) return out;
    i = j + 1;
  }
}

bool perm_bits(std::string_view s, mode_t& out) { return s.size() == 4 && number(s, out, 8) && out <= 07777; }

// The fields of the result: those still equal to the placeholder's take the recorded value.
struct Fields {
  mode_t mode;
  uid_t uid;
  gid_t gid;
};

constexpr mode_t kSetId = S_ISUID | S_ISGID;

std::optional<Fields> overridden(mode_t mode, uid_t uid, gid_t gid, const OverrideStat& o) {
  if ((mode & S_IFMT) != (o.placeholder_mode & S_IFMT)) return std::nullopt;
  Fields f;
  f.uid = uid == o.placeholder_uid ? o.uid : uid;
  f.gid = gid == o.placeholder_gid ? o.gid : gid;
  mode_t perm = (mode & 07777) == (o.placeholder_mode & 07777) ? (o.mode & 07777) : (mode & 07777);
  f.mode = (o.mode & S_IFMT) | perm;
  return f;
}

// The set-id bits a write cleared (override_stat.h): the recorded ones `f` lacks, when it
// has no other and its remaining permission bits are the recorded ones, and the mtime moved.
mode_t lost_setid(const Fields& f, const struct timespec& mtime, const OverrideStat& o) {
  if (!o.mtime || !S_ISREG(o.mode) || !S_ISREG(f.mode)) return 0;
  mode_t lost = o.mode & kSetId & ~f.mode;
  // The kernel keeps S_ISGID without S_IXGRP (a locking mark, not a privilege) on a write, so
  // only a chmod removes that one.
  if ((o.mode & S_IXGRP) == 0) lost &= ~S_ISGID;
  if (!lost || (f.mode & kSetId & ~o.mode) != 0) return 0;
  if ((f.mode & 07777 & ~kSetId) != (o.mode & 07777 & ~kSetId)) return 0;
  FileTime now{.sec = mtime.tv_sec, .nsec = static_cast<std::uint32_t>(mtime.tv_nsec)};
  return now == *o.mtime ? 0 : lost;
}

bool mtime_field(std::string_view s, FileTime& out) {
  auto dot = s.find('.');
  if (dot == std::string_view::npos || s.size() - dot - 1 != 9) return false;
  std::string_view sec = s.substr(0, dot);
  bool negative = sec.starts_with('-');
  if (negative) sec.remove_prefix(1);
  std::uint64_t abs = 0;
  if (!number(sec, abs) || abs > static_cast<std::uint64_t>(INT64_MAX) || !number(s.substr(dot + 1), out.nsec) ||
      out.nsec >= 1000000000u)
    return false;
  out.sec = negative ? -static_cast<std::int64_t>(abs) : static_cast<std::int64_t>(abs);
  return true;
}

}  // namespace

bool is_reserved_xattr(std::string_view key) noexcept { return key.starts_with(kReservedXattrPrefix); }

std::string format_override_stat(const OverrideStat& o) {
  std::string mtime;
  if (o.mtime) {
    std::string nsec = std::to_string(o.mtime->nsec);
    mtime = " mtime=" + std::to_string(o.mtime->sec) + "." + std::string(9 - std::min<std::size_t>(9, nsec.size()), '0') + nsec;
  }
  return "type=" + std::string(type_name(o.mode)) + " mode=" + octal(o.mode) + " uid=" + std::to_string(o.uid) +
         " gid=" + std::to_string(o.gid) + " rdev=" + std::to_string(o.dev_major) + ":" +
         std::to_string(o.dev_minor) + " placeholder=" + std::string(type_name(o.placeholder_mode)) + ":" +
         octal(o.placeholder_mode) + ":" + std::to_string(o.placeholder_uid) + ":" +
         std::to_string(o.placeholder_gid) + mtime;
}

std::optional<OverrideStat> parse_override_stat(std::string_view text) {
  auto fields = split(text, ' ');
  static constexpr std::string_view kKeys[] = {"type=", "mode=", "uid=", "gid=", "rdev=", "placeholder=", "mtime="};
  // `mtime` is optional: records written before it existed have six fields.
  if (fields.size() != std::size(kKeys) && fields.size() != std::size(kKeys) - 1) return std::nullopt;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (!fields[i].starts_with(kKeys[i])) return std::nullopt;
    fields[i].remove_prefix(kKeys[i].size());
  }
  OverrideStat o;
  auto type = type_of(fields[0]);
  mode_t perm = 0;
  if (!type || !perm_bits(fields[1], perm) || !number(fields[2], o.uid) || !number(fields[3], o.gid))
    return std::nullopt;
  o.mode = *type | perm;
  auto rdev = split(fields[4], ':');
  if (rdev.size() != 2 || !number(rdev[0], o.dev_major) || !number(rdev[1], o.dev_minor)) return std::nullopt;
  auto ph = split(fields[5], ':');
  if (ph.size() != 4) return std::nullopt;
  auto ph_type = type_of(ph[0]);
  mode_t ph_perm = 0;
  // A placeholder is only ever a regular file or a directory (what carries user.* xattrs).
  if (!ph_type || (*ph_type != S_IFREG && *ph_type != S_IFDIR) || !perm_bits(ph[1], ph_perm) ||
      !number(ph[2], o.placeholder_uid) || !number(ph[3], o.placeholder_gid))
    return std::nullopt;
  if ((*ph_type == S_IFDIR) != (*type == S_IFDIR)) return std::nullopt;
  o.placeholder_mode = *ph_type | ph_perm;
  if (fields.size() == std::size(kKeys)) {
    // Only a set-id regular file has one (override_stat.h).
    FileTime t;
    if (*type != S_IFREG || (perm & kSetId) == 0 || !mtime_field(fields[6], t)) return std::nullopt;
    o.mtime = t;
  }
  return o;
}

OverrideStat parse_override_stat_or_throw(std::string_view text, std::string_view shown) {
  auto o = parse_override_stat(text);
  if (!o)
    throw Error(ErrorKind::InvalidArgument, quote(std::string(shown)) + " carries a malformed " +
                                                std::string(kOverrideStatXattr) + " attribute: " +
                                                quote(std::string(text)));
  return *o;
}

bool restores_setid(const struct stat& st, const OverrideStat& o) {
  auto f = overridden(st.st_mode, st.st_uid, st.st_gid, o);
  return f && lost_setid(*f, st.st_mtim, o) != 0;
}

struct stat apply_override(const struct stat& st, const OverrideStat& o, std::string_view shown) {
  auto f = overridden(st.st_mode, st.st_uid, st.st_gid, o);
  if (!f) return st;
  f->mode |= lost_setid(*f, st.st_mtim, o);
  struct stat out = st;
  out.st_mode = f->mode;
  out.st_uid = f->uid;
  out.st_gid = f->gid;
  if (!S_ISREG(f->mode) && !S_ISDIR(f->mode)) {
    if (st.st_size != 0)
      throw Error(ErrorKind::FailedPrecondition,
                  quote(std::string(shown)) + " is the placeholder of a " + std::string(type_name(o.mode)) +
                      " device a rootless build cannot create, and something wrote into it; that data cannot "
                      "be part of a layer (build as root)");
    out.st_size = 0;
    out.st_rdev = S_ISFIFO(f->mode) ? 0 : makedev(o.dev_major, o.dev_minor);
  }
  return out;
}

namespace {
struct stat stat_of(const oci::TarEntry& e) {
  struct stat st {};
  st.st_mode = (e.type == oci::TarType::Dir ? S_IFDIR : e.type == oci::TarType::File ? S_IFREG : 0) | e.mode;
  st.st_uid = e.uid;
  st.st_gid = e.gid;
  st.st_size = e.size;
  st.st_mtim.tv_sec = e.mtime_sec;
  st.st_mtim.tv_nsec = e.mtime_nsec;
  return st;
}
}  // namespace

bool restores_setid(const oci::TarEntry& e, const OverrideStat& o) { return restores_setid(stat_of(e), o); }

void apply_override(oci::TarEntry& e, const OverrideStat& o) {
  struct stat out = apply_override(stat_of(e), o, e.path);
  e.mode = out.st_mode & 07777;
  e.uid = out.st_uid;
  e.gid = out.st_gid;
  if (S_ISCHR(out.st_mode) || S_ISBLK(out.st_mode) || S_ISFIFO(out.st_mode)) {
    e.type = S_ISCHR(out.st_mode) ? oci::TarType::Char : S_ISBLK(out.st_mode) ? oci::TarType::Block : oci::TarType::Fifo;
    e.size = 0;
    e.dev_major = S_ISFIFO(out.st_mode) ? 0 : o.dev_major;
    e.dev_minor = S_ISFIFO(out.st_mode) ? 0 : o.dev_minor;
  }
}

}  // namespace cbuild::overlay
