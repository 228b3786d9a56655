// Rootless mode: entering a user namespace in which the calling user is root.
//
// enter_user_namespace() moves the calling process (which must still be single-threaded: the
// kernel refuses unshare(CLONE_NEWUSER) to a multi-threaded process) into a new user and
// mount namespace. Inside, the caller's uid and gid are 0, so snapshots, overlay mounts and the
// sandbox work as they do for real root, within what a user namespace allows:
//  - IdMapping::Kind::Range: /etc/subuid and /etc/subgid grant the user ranges (matched by
//    name or by uid), and newuidmap/newgidmap (package uidmap) map them: 0 → the user, 1..N →
//    the subordinate ids, in the files' order. Images with several owners build as with root.
//    With a usable $XDG_RUNTIME_DIR the namespace is kept by a keeper process and the user's
//    next commands join it when it maps exactly the same ids (userns_keeper.h): they still
//    get a mount namespace of their own, and nothing else differs from a new namespace.
//  - IdMapping::Kind::Single: no ranges (or no newuidmap): only 0 is mapped, setgroups is
//    denied. Every file is owned by 0 inside, and a chown to any other id fails —
//    single_mapping_notice() says so in one paragraph for the caller to print once.
//  - Called by root (a container's root without CAP_SYS_ADMIN, where --isolation picks userns):
//    the new namespace maps every id this one has onto itself (Kind::Range, outer ids 0), so
//    owners are what they are outside; the maps are written directly, no helper programs.
// The mount namespace is private (nothing cbuild mounts reaches the host, and everything it
// mounts goes away with the process). Environment variables are untouched, so anything that
// depends on the outer identity (the store's default root) may be resolved before or after.
//
// What a user namespace cannot do: device nodes other than overlay's 0/0 whiteouts cannot be
// made (mknod needs CAP_MKNOD in the initial namespace), files cannot be owned by ids outside
// the mapping, and trusted.* xattrs cannot be set. The applier writes placeholders for the
// first two (override_stat.h); rootless_limit_message() turns what remains into one sentence.
//
// overlay_xattr_namespace() is the process-wide answer to "which overlay xattrs do my mounts
// use": User when this process runs in any user namespace other than the initial one (after
// enter_user_namespace(), or when started as root of a container's user namespace), else
// Trusted. ApplyOptions, DiffOptions and MountSpec take it as their default.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "overlay/whiteout.h"

namespace cbuild::overlay {

struct SubordinateRange {
  std::uint32_t start = 0;
  std::uint32_t count = 0;
};

struct IdMapping {
  enum class Kind { Range, Single };
  Kind kind = Kind::Single;
  uid_t outer_uid = 0;  // the user's ids outside, mapped to 0 inside
  gid_t outer_gid = 0;
  std::vector<SubordinateRange> uid_ranges;  // mapped to 1.. inside, in order (empty: Single)
  std::vector<SubordinateRange> gid_ranges;
  // Ids usable inside: 0 .. count-1.
  std::uint64_t uid_count() const noexcept;
  std::uint64_t gid_count() const noexcept;
};

struct UserNamespaceOptions {
  // The subordinate-id files and the helpers (tests point them elsewhere).
  std::string subuid_file = "/etc/subuid";
  std::string subgid_file = "/etc/subgid";
  std::string newuidmap = "newuidmap";  // searched in PATH, then /usr/bin and /bin
  std::string newgidmap = "newgidmap";
};

// The ranges an /etc/subuid-style text grants the user `name` or numeric `id` ("name:start:
// count" lines; '#' comments, blank and malformed lines skipped), in file order.
std::vector<SubordinateRange> parse_subordinate_ids(std::string_view text, std::string_view name, std::uint32_t id);

// Enters the namespaces as described above and returns the mapping made. Throws
// FailedPrecondition naming what is missing when the kernel refuses user namespaces (with
// the sysctl or container setting that would allow them) or newuidmap/newgidmap fail
// (their own message quoted). Must be called while the process has one thread; the caller
// may be anybody, root included (see above). Call at most once.
IdMapping enter_user_namespace(const UserNamespaceOptions& options = {});

// The mapping enter_user_namespace() made, or nullopt when it was not called (or failed).
const std::optional<IdMapping>& current_id_mapping() noexcept;

// True when this process's user namespace is the initial one (its uid_map is the identity
// over all ids).
bool in_initial_user_namespace();

XattrNamespace overlay_xattr_namespace();

// Whether `gid` has a mapping in this process's user namespace (always true in the initial one).
bool gid_is_mapped(gid_t gid);

// The id a rootless snapshot gives a file whose owner `id` this namespace does not map
// (override_stat.h): the highest mapped id below it, else the lowest mapped one. `id` itself
// when mapped (always in the initial namespace).
std::uint32_t nearest_mapped_id(std::uint32_t id, bool is_gid);

// The paragraph to print once for a Single mapping.
std::string single_mapping_notice(const IdMapping& m);

// When running in a user namespace and `errno_value` from `operation` ("mknod", "chown",
// "setxattr") is what the namespace causes, a sentence naming `path` and the limit (for a
// chown, the ids `uid`:`gid` and the mapped count); else nullopt.
std::optional<std::string> rootless_limit_message(std::string_view operation, int errno_value, std::string_view path,
                                                  std::uint32_t uid = 0, std::uint32_t gid = 0);

}  // namespace cbuild::overlay
