// ActiveMount — performs a MountSpec at a target directory and owns the mount.
//
// The constructor creates the target directory when it does not exist (and then removes it
// again), mounts with the new mount API (fsopen/fsconfig with one "lowerdir+" per layer), and
// falls back to mount(2) with the legacy data string on kernels without "lowerdir+".
// The destructor (or unmount()) detaches the mount (MNT_DETACH, so a busy mount cannot make
// cleanup fail) and then removes the target with a plain, non-recursive rmdir — a recursive
// remove could walk into the still-visible merged view and delete lower layers' files
// (containerd core/mount/temp.go makes the same choice). Destructors never throw; they log
// to stderr. Move-only; not thread-safe.
#pragma once

#include <filesystem>

#include "overlay/mount_spec.h"

namespace cbuild::overlay {

class ActiveMount {
 public:
  // Throws cbuild::Error (the kernel's overlayfs message included where it gives one).
  ActiveMount(const MountSpec& spec, std::filesystem::path target);
  ActiveMount(ActiveMount&& o) noexcept;
  ActiveMount& operator=(ActiveMount&&) = delete;
  ActiveMount(const ActiveMount&) = delete;
  ActiveMount& operator=(const ActiveMount&) = delete;
  ~ActiveMount();

  const std::filesystem::path& target() const noexcept { return target_; }
  bool mounted() const noexcept { return mounted_; }
  // Detaches now and removes the target if this object created it. Throws on failure.
  void unmount();
  // Hands the mount out: it stays mounted when this object is gone (`cbuild mount`); the
  // caller records it and later calls unmount_path(). Returns the target.
  std::filesystem::path release() noexcept;
  // Detaches whatever is mounted at `target` (MNT_DETACH). Returns false when nothing is.
  static bool unmount_path(const std::filesystem::path& target);

 private:
  std::filesystem::path target_;
  bool mounted_ = false;
  bool created_target_ = false;
};

}  // namespace cbuild::overlay
