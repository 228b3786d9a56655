// Override stat — what a rootless snapshot could not write, kept beside a placeholder.
//
// A user namespace cannot create device nodes, nor give a file an owner outside its mapped
// ids. When the applier meets such an entry rootless, it writes a placeholder instead — a
// regular empty file for a device node or fifo (same permission bits), the entry itself for a
// file or directory, owned by the nearest mapped id (the highest mapped id below the real one,
// so 0 with a single-id mapping) — and records on it the xattr kOverrideStatXattr:
//
//     type=char mode=0620 uid=70000 gid=70000 rdev=4:1 placeholder=file:0620:0:0
//
// `type` (file, dir, char, block, fifo), `mode` (permission bits, octal), `uid`, `gid` and
// `rdev` (major:minor) are the entry's real values; `placeholder` is the type, permission
// bits and owner the placeholder was created with. Every reader that turns snapshot files
// into layer entries (the differ, the tree diff, COPY's sources and the streamed COPY's
// copy-ups) reads the entry through it with apply_override(): a field still equal to the
// placeholder's takes the recorded value, a field a RUN changed since (chown, chmod) keeps the
// change, as a root build's chown/chmod would. A chown to exactly the placeholder's owner is
// therefore invisible: the recorded owner stays, and the differ warns about a RUN's changed
// placeholders that still show it (DiffOptions::warn; docs/rootless.md).
//
// Every xattr whose name starts with kReservedXattrPrefix belongs to cbuild: none is ever
// written into a layer, and a layer that carries one is refused at unpack (the applier), so a
// base image cannot forge an entry's stat. A RUN that sets the attribute gets what it says,
// in root and rootless builds alike (a layer's contents grant no privilege).
//
// Setuid and setgid files. Writing into a file clears its S_ISUID/S_ISGID unless the writer has
// CAP_FSETID in the *initial* user namespace, so a RUN in a user namespace that writes into a
// setuid file loses the bit where a root build (and docker's) keeps it. A stat cannot tell
// that write from a `chmod u-s`, so every regular file whose real mode has S_ISUID or S_ISGID
// carries the attribute in a rootless snapshot — written at unpack (the applier) and when a
// step's upper becomes a snapshot (strip_for_commit(): the upper is made to hold what its
// layer holds and the record is renewed) — with one more field, its mtime to the nanosecond:
//
//     type=file mode=4755 uid=0 gid=0 rdev=0:0 placeholder=file:4755:0:0 mtime=1700000000.000000000
//
// apply_override() then restores the set-id bits the recorded mode had when the entry now
// lacks them, its other permission bits are the recorded ones and its mtime is not the
// recorded one (data was written: that is what clears them; `chmod u-s` leaves the mtime).
// A step that both writes and removes the bit cannot be told from a write alone: it gets the
// bit back, and the differ warns naming it (DiffOptions::warn). S_ISGID without S_IXGRP is
// never restored (a write keeps it; only a chmod removes it). A record without `mtime`
// (written before it existed) restores nothing; the snapshot store gives older snapshots'
// set-id files their records once (snapshot_store.h). The tree diff reads a chroot step run
// without CAP_FSETID the same way, against the file's stat before the step (tree_diff.h).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "oci/tar_entry.h"

namespace cbuild::overlay {

inline constexpr std::string_view kOverrideStatXattr = "user.cbuild.override_stat";
inline constexpr std::string_view kReservedXattrPrefix = "user.cbuild.";

bool is_reserved_xattr(std::string_view key) noexcept;

struct FileTime {
  std::int64_t sec = 0;
  std::uint32_t nsec = 0;
  bool operator==(const FileTime&) const = default;
};

struct OverrideStat {
  mode_t mode = 0;  // the real st_mode: type and permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  std::uint32_t dev_major = 0, dev_minor = 0;
  mode_t placeholder_mode = 0;  // st_mode the placeholder was created with
  uid_t placeholder_uid = 0;
  gid_t placeholder_gid = 0;
  // Set only for a regular file whose `mode` has S_ISUID or S_ISGID (see above).
  std::optional<FileTime> mtime;
};

// True when `st` (an entry's current stat read through `o`) gets set-id bits back: see above.
bool restores_setid(const struct stat& st, const OverrideStat& o);
// The same for a layer entry made from the entry's stat (as apply_override() below takes it).
bool restores_setid(const oci::TarEntry& e, const OverrideStat& o);

std::string format_override_stat(const OverrideStat& o);
// nullopt when `text` is not exactly the format above.
std::optional<OverrideStat> parse_override_stat(std::string_view text);

// `st` (the placeholder `shown`'s current stat) read through `o` (see above), set-id bits
// restored as restores_setid() says. A placeholder whose type is no longer the recorded
// placeholder type is returned unchanged. Throws
// FailedPrecondition naming `shown` when the placeholder of a device node or fifo holds data
// (a RUN wrote into it: what it wrote cannot be put in a layer).
struct stat apply_override(const struct stat& st, const OverrideStat& o, std::string_view shown);

// The same for a layer entry made from the placeholder's stat (type File or Dir; mode, uid,
// gid, size and mtime as on disk): type, device numbers, owner and mode become what apply_override()
// gives, and the size 0 for a device node or fifo.
void apply_override(oci::TarEntry& e, const OverrideStat& o);

// The override recorded in an xattr value read from `shown`; throws InvalidArgument naming
// it when the value is malformed (never a guess).
OverrideStat parse_override_stat_or_throw(std::string_view text, std::string_view shown);

}  // namespace cbuild::overlay
