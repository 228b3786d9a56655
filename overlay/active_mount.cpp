#include "overlay/active_mount.h"

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iostream>

#include "oci/base/error.h"
#include "overlay/sys/syscalls.h"

namespace cbuild::overlay {
namespace {

// True when the kernel accepted the mount through fsconfig; false when "lowerdir+" is
// unknown (before Linux 6.8), so the caller should use mount(2).
bool mount_new_api(const MountSpec& spec, const std::string& target) {
  UniqueFd fs = sys::fsopen("overlay");
  auto params = spec.fsconfig_params();
  for (const auto& [key, value] : params) {
    try {
      sys::fsconfig_set(fs.get(), key.c_str(), value.empty() ? nullptr : value.c_str());
    } catch (const Error& e) {
      if (key == "lowerdir+" && e.sys_errno() == EINVAL && &key == &params.front().first) return false;
      if (key == kVolatileOption && e.sys_errno() == EINVAL) continue;  // before Linux 5.10: sync at umount
      throw;
    }
  }
  sys::fsconfig_create(fs.get(), target);
  UniqueFd mnt = sys::fsmount(fs.get(), 0);
  sys::move_mount_to(mnt.get(), target);
  return true;
}

}  // namespace

ActiveMount::ActiveMount(const MountSpec& spec, std::filesystem::path target) : target_(std::move(target)) {
  spec.validate();
  if (::mkdir(target_.c_str(), 0755) == 0) created_target_ = true;
  else if (errno != EEXIST) throw_errno("mkdir", target_.string());
  try {
    if (!mount_new_api(spec, target_.string())) {
      try {
        sys::mount("overlay", target_.string(), "overlay", 0, spec.legacy_data().c_str());
      } catch (const Error& e) {
        auto& extra = spec.extra_options;
        if (e.sys_errno() != EINVAL || std::find(extra.begin(), extra.end(), kVolatileOption) == extra.end()) throw;
        MountSpec plain = spec;
        std::erase(plain.extra_options, std::string(kVolatileOption));
        sys::mount("overlay", target_.string(), "overlay", 0, plain.legacy_data().c_str());
      }
    }
    mounted_ = true;
  } catch (...) {
    if (created_target_) ::rmdir(target_.c_str());
    throw;
  }
}

ActiveMount::ActiveMount(ActiveMount&& o) noexcept
    : target_(std::move(o.target_)), mounted_(std::exchange(o.mounted_, false)),
      created_target_(std::exchange(o.created_target_, false)) {}

void ActiveMount::unmount() {
  if (mounted_) {
    sys::umount2(target_.string(), MNT_DETACH);
    mounted_ = false;
  }
  if (created_target_) {
    if (::rmdir(target_.c_str()) < 0 && errno != ENOENT) throw_errno("rmdir", target_.string());
    created_target_ = false;
  }
}

std::filesystem::path ActiveMount::release() noexcept {
  mounted_ = false;
  created_target_ = false;
  return target_;
}

bool ActiveMount::unmount_path(const std::filesystem::path& target) {
  if (::umount2(target.c_str(), MNT_DETACH) == 0) return true;
  if (errno == EINVAL || errno == ENOENT) return false;  // not a mount point
  throw_errno("umount", target.string());
}

ActiveMount::~ActiveMount() {
  try {
    unmount();
  } catch (const std::exception& e) {
    std::cerr << "cbuild: warning: " << e.what() << "\n";
  }
}

}  // namespace cbuild::overlay
