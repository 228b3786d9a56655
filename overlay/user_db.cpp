#include "overlay/user_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <optional>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "overlay/safe_path.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::overlay {
namespace {

constexpr std::size_t kMaxDbFile = 4u << 20;

std::optional<std::uint32_t> parse_id(std::string_view s) {
  std::uint32_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  for (;;) {
    std::size_t j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) return out;
    i = j + 1;
  }
}

// Calls f(fields) for each well-formed line with at least `min_fields` ':'-separated fields.
template <class F>
void for_each_line(std::string_view text, std::size_t min_fields, F f) {
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    auto fields = split(line, ':');
    if (fields.size() < min_fields) continue;
    f(fields);
  }
}

std::string read_in_rootfs(const std::filesystem::path& rootfs, const char* path) {
  UniqueFd root = sys::openat(AT_FDCWD, rootfs.string(), O_PATH | O_DIRECTORY, 0, rootfs.string());
  UniqueFd fd;
  try {
    fd = open_in_root(root.get(), path, O_RDONLY);
  } catch (const Error& e) {
    if (e.sys_errno() == ENOENT || e.sys_errno() == ENOTDIR) return {};
    throw;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    std::size_t n = read_full(fd.get(), buf, sizeof buf, path);
    out.append(buf, n);
    if (out.size() > kMaxDbFile)
      throw Error(ErrorKind::ResourceExhausted, std::string("reading ") + quote(path) + " of the image: larger than 4 MiB");
    if (n < sizeof buf) return out;
  }
}

}  // namespace

ExecUser resolve_user(std::string_view user, std::string_view passwd, std::string_view group) {
  std::string_view user_part = user, group_part;
  bool has_group = false;
  if (auto c = user.find(':'); c != std::string_view::npos) {
    user_part = user.substr(0, c);
    group_part = user.substr(c + 1);
    has_group = true;
  }
  if (user_part.empty()) user_part = "0";
  if (has_group && group_part.empty())
    throw Error(ErrorKind::InvalidArgument, "user " + quote(user) + ": empty group");

  ExecUser out;
  auto uid_num = parse_id(user_part);
  bool found = false;
  for_each_line(passwd, 7, [&](const std::vector<std::string_view>& f) {
    if (found) return;
    auto uid = parse_id(f[2]);
    auto gid = parse_id(f[3]);
    if (!uid || !gid) return;
    if (uid_num ? *uid == *uid_num : f[0] == user_part) {
      found = true;
      out.uid = *uid;
      out.gid = *gid;
      out.name = std::string(f[0]);
      out.home = f[5].empty() ? "/" : std::string(f[5]);
    }
  });
  if (!found) {
    if (!uid_num)
      throw Error(ErrorKind::NotFound, "unable to find user " + std::string(user_part) +
                                           ": no matching entries in passwd file");
    out.uid = *uid_num;
    out.gid = 0;
  }

  if (has_group) {
    auto gid_num = parse_id(group_part);
    bool gfound = false;
    for_each_line(group, 3, [&](const std::vector<std::string_view>& f) {
      if (gfound) return;
      auto gid = parse_id(f[2]);
      if (!gid) return;
      if (gid_num ? *gid == *gid_num : f[0] == group_part) {
        gfound = true;
        out.gid = *gid;
      }
    });
    if (!gfound) {
      if (!gid_num)
        throw Error(ErrorKind::NotFound, "unable to find group " + std::string(group_part) +
                                             ": no matching entries in group file");
      out.gid = *gid_num;
    }
  }

  // Supplementary groups only in the implicit form: an explicit group is the whole group set.
  if (!has_group && !out.name.empty()) {
    for_each_line(group, 4, [&](const std::vector<std::string_view>& f) {
      auto gid = parse_id(f[2]);
      if (!gid) return;
      for (std::string_view member : split(f[3], ','))
        if (member == out.name) out.groups.push_back(*gid);
    });
  }
  std::sort(out.groups.begin(), out.groups.end());
  out.groups.erase(std::unique(out.groups.begin(), out.groups.end()), out.groups.end());
  return out;
}

ExecUser resolve_user_in_rootfs(std::string_view user, const std::filesystem::path& rootfs) {
  return resolve_user(user, read_in_rootfs(rootfs, "etc/passwd"), read_in_rootfs(rootfs, "etc/group"));
}

}  // namespace cbuild::overlay
