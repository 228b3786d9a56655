// UserDb — resolving a Dockerfile USER ("name", "uid", "name:group", "uid:gid") against an
// image's /etc/passwd and /etc/group, the way runc/docker do, without NSS.
//
// The files are untrusted image content: they are read inside the rootfs (safe_path.h), at most
// 4 MiB each, and malformed lines are skipped. Rules (runc user.GetExecUser):
//  - a name must exist in passwd ("unable to find user NAME: no matching entries in passwd
//    file", NotFound); a numeric uid may be absent (gid 0, home "/");
//  - a group name must exist in group; a numeric gid may be absent;
//  - the primary gid is the explicit group, else passwd's gid;
//  - without an explicit group, supplementary groups are the gids of /etc/group entries
//    listing the user's name (never inherited from the host); with one ("app:audio",
//    "1000:63"), there are none: the process is in exactly that group.
// Value types; functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace cbuild::overlay {

struct ExecUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, sorted, without duplicates
  std::string home = "/";
  std::string name;           // "" when the uid has no passwd entry
};

// Resolves `user` from the texts of passwd and group (either may be empty).
ExecUser resolve_user(std::string_view user, std::string_view passwd, std::string_view group);
// Reads etc/passwd and etc/group inside `rootfs` (missing files are empty) and resolves.
ExecUser resolve_user_in_rootfs(std::string_view user, const std::filesystem::path& rootfs);

}  // namespace cbuild::overlay
