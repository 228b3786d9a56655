// Cgroup — one cgroup per sandbox run that enforces --memory, --cpus and --pids-limit and can
// kill everything in it. Works on cgroup v2 (unified), v1, and hybrid hosts (v1 controllers
// plus an empty unified tree, like this CI machine): the controllers are used wherever they
// are mounted. Created under "<hierarchy>/cbuild/<unique>", removed by the destructor after
// killing what is left. Inactive (every call a no-op) when the limits are empty.
// Layout detection and the limit files are pure functions, unit-tested without root.
// In a user namespace (rootless) where the cgroup cannot be made for lack of permission, the
// limits are not applied and a warning on stderr names them; the run goes on.
// Move-only; not thread-safe. Throws cbuild::Error naming the cgroup file.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "overlay/sandbox.h"

namespace cbuild::overlay {

struct CgroupLayout {
  std::filesystem::path unified;  // the v2 mount, or empty
  // v1 controller name ("memory", "cpu", "pids") → its mount point.
  std::vector<std::pair<std::string, std::filesystem::path>> v1;
  // The controllers enabled-able in the unified tree (its cgroup.controllers), filled by
  // detect_cgroup_layout() from the host.
  std::vector<std::string> unified_controllers;
};

// Parses /proc/self/mountinfo text: cgroup2 and cgroup (v1) mounts with their controllers.
CgroupLayout parse_cgroup_mounts(std::string_view mountinfo);
// The host's layout (mountinfo + the unified tree's cgroup.controllers).
CgroupLayout detect_cgroup_layout();

// (file, value) pairs to write for the limits, as docker sets them (swap allowed = memory):
// v2: memory.max, memory.swap.max, cpu.max, pids.max; v1 (keyed by controller):
// memory.limit_in_bytes, memory.memsw.limit_in_bytes, cpu.cfs_period_us/cfs_quota_us, pids.max.
// The swap files are skipped where the kernel has no swap accounting.
std::vector<std::pair<std::string, std::string>> v2_limit_files(const ResourceLimits& limits);
std::vector<std::pair<std::string, std::string>> v1_limit_files(const std::string& controller,
                                                                const ResourceLimits& limits);

class Cgroup {
 public:
  // Creates the cgroup(s) and writes the limits. Throws FailedPrecondition when a limit is
  // asked for whose controller is not available.
  explicit Cgroup(const ResourceLimits& limits);
  Cgroup(Cgroup&&) noexcept = default;
  Cgroup& operator=(Cgroup&&) = delete;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup();

  bool active() const noexcept { return !dirs_.empty(); }
  const std::vector<std::filesystem::path>& dirs() const noexcept { return dirs_; }
  // Moves a process (and later its children) into the cgroup(s).
  void add(pid_t pid);
  // SIGKILLs every process in the cgroup(s). Never throws.
  void kill_all() noexcept;

 private:
  std::vector<std::filesystem::path> dirs_;
};

}  // namespace cbuild::overlay
