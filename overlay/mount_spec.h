// MountSpec — an overlay mount as a plain value: what SnapshotStore::prepare() returns and
// ActiveMount performs. Building the options is pure string work, unit-tested without root.
//
// `lowers` are in overlay order: the top-most (newest) layer first, the base image's first
// layer last. With an `upper` (and `work` on the same filesystem) the mount is writable;
// without one it is a read-only view (overlayfs needs at least one lower then).
// The module always mounts with index=off, redirect_dir=off (nofollow with userxattr, the
// only value the kernel accepts there) and metacopy=off so that an
// upper directory is a plain changeset the differ can read and a snapshot can become.
//
// Two ways to hand the options to the kernel:
//  - legacy_data(): the mount(2) data string "lowerdir=a:b,upperdir=…". It must fit in one
//    page and cannot carry ',' ':' '\\' or newline in a path (throws InvalidArgument).
//  - fsconfig_params(): (key, value) pairs for fsconfig(2), one "lowerdir+" per layer (Linux
//    6.8+), so stacks of hundreds of layers and any path characters work.
// Value type; thread-compatible.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "overlay/user_namespace.h"

namespace cbuild::overlay {

struct MountSpec {
  std::vector<std::string> lowers;  // top-most first
  std::string upper;                // empty: read-only view
  std::string work;                 // required with upper
  // user.overlay.* xattrs: by default when running in a user namespace (user_namespace.h).
  bool userxattr = overlay_xattr_namespace() == XattrNamespace::User;
  std::vector<std::string> extra_options;  // "key" or "key=value", appended as given

  // The fixed options every cbuild overlay mount carries (redirect_dir differs with userxattr).
  static std::vector<std::pair<std::string, std::string>> base_options(bool userxattr = false);

  // Throws InvalidArgument when the spec cannot be mounted (no lowers, upper without work,
  // an empty or relative path).
  void validate() const;
  // The legacy mount(2) data string. Throws InvalidArgument as described above.
  std::string legacy_data() const;
  // True when legacy_data() would succeed.
  bool fits_legacy() const noexcept;
  // fsconfig(2) parameters in the order they must be set; a value-less flag has value "".
  std::vector<std::pair<std::string, std::string>> fsconfig_params() const;
};

// overlayfs' "volatile" (Linux 5.10+): no sync of the upper filesystem at umount or syncfs.
// Writable build mounts carry it (SnapshotStore::prepare); ActiveMount drops it on kernels
// that refuse it.
inline constexpr const char* kVolatileOption = "volatile";

// Linux's limit for the mount(2) data page.
inline constexpr std::size_t kMountDataMax = 4095;

}  // namespace cbuild::overlay
