// Owner records for what a process leaves in a store while it runs (scratch dirs, mount points,
// ingest files, leases, temp files beside an output), so that whoever comes next can tell a dead
// owner's leftovers from a live one's and reclaim them.
//
// An owner is a pid plus the process's start time (field 22 of /proc/PID/stat, in clock ticks
// since boot): a recycled pid has another start time, so it is never mistaken for the owner.
// Names carry the stamp as "<kind>-<pid>.<start>[-<rest>]" (kind without '-'); the dot keeps
// names of older versions ("<kind>-<pid>-<counter>") from reading as stamps.
// Stamps compare within one pid namespace: a process that cannot be looked up for any reason
// other than "no such process" counts as alive, so nothing is reclaimed on a guess.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>


namespace cbuild {

struct OwnerStamp {
  pid_t pid = 0;
  std::uint64_t start = 0;
  // "<pid>.<start>"
  std::string str() const;
  // This process.
  static OwnerStamp self();
  bool operator==(const OwnerStamp&) const = default;
};

// The start time of `pid` (clock ticks since boot), or nullopt when there is no such process.
// Throws when /proc cannot be read for another reason.
std::optional<std::uint64_t> process_start_time(pid_t pid);
// Whether the owner still runs (same pid, same start time). Errors count as alive.
bool owner_alive(const OwnerStamp& owner) noexcept;
// The stamp in "<kind>-<pid>.<start>[-<rest>]", or nullopt for a name without one.
std::optional<OwnerStamp> stamp_in_name(std::string_view name);

// Detaches (MNT_DETACH, never following a symlink) every mount at or below `dir`, deepest
// first, as /proc/self/mountinfo lists them. Returns how many were detached.
std::size_t detach_mounts_under(const std::filesystem::path& dir);

// Reclaims the entries of `dir` whose name carries the stamp of a dead owner: what is mounted
// in them is detached, then they are removed without following symlinks. An entry somebody
// still holds an flock on is kept (a lease or ingest file handed to a surviving child), and so
// is every name without a stamp and every entry of a live owner. Best effort: a failure is
// logged to stderr and the entry is left for the next try. Returns how many went.
std::size_t reclaim_dead_entries(const std::filesystem::path& dir) noexcept;

// Dot-files ".NAME.tmp-<pid>.<start>-XXXX" (AtomicFile's temp files) of dead owners in `dir`:
// removed, so a killed writer's partial output does not stay beside it forever. Returns how
// many went; best effort like reclaim_dead_entries.
std::size_t remove_dead_atomic_temps(const std::filesystem::path& dir) noexcept;

// This process's scratch directory inside a store, $PARENT/proc-<pid>.<start>/, flock'd while it
// lives. While it exists, TempDir's default parent is this directory instead of $TMPDIR, so a
// build's mount points and temp dirs are on the store's filesystem and a crashed build's are
// reclaimed by the next command that opens the store (reclaim_dead_entries). Objects for the
// same parent share the directory (builds at once in one process); the last one destroyed
// removes it with what is left inside (never through a live mount). Thread-safe.
class ProcessScratch {
 public:
  explicit ProcessScratch(const std::filesystem::path& parent);
  ~ProcessScratch();
  ProcessScratch(const ProcessScratch&) = delete;
  ProcessScratch& operator=(const ProcessScratch&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

// TempDir's default parent: the newest live ProcessScratch's directory, else $TMPDIR, else /tmp.
std::filesystem::path default_temp_parent();

}  // namespace cbuild
