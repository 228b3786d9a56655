#include "overlay/whiteout.h"

#include <sys/sysmacros.h>

#include <utility>

#include "overlay/sys/syscalls.h"

namespace cbuild::overlay {
namespace {
constexpr std::string_view kPrefix = ".wh.";
constexpr std::string_view kMetaPrefix = ".wh..wh.";
}  // namespace

WhiteoutName classify_whiteout(std::string_view basename) noexcept {
  if (basename.substr(0, kPrefix.size()) != kPrefix) return WhiteoutName::None;
  if (basename == kOpaqueMarker) return WhiteoutName::Opaque;
  if (basename.substr(0, kMetaPrefix.size()) == kMetaPrefix) return WhiteoutName::Meta;
  // ".wh." alone deletes nothing nameable.
  if (basename.size() == kPrefix.size()) return WhiteoutName::Meta;
  return WhiteoutName::Whiteout;
}

std::string whiteout_target(std::string_view basename) {
  return std::string(basename.substr(kPrefix.size()));
}

std::string whiteout_entry_name(std::string_view name) { return std::string(kPrefix) + std::string(name); }

std::string opaque_xattr(XattrNamespace ns) {
  return ns == XattrNamespace::Trusted ? "trusted.overlay.opaque" : "user.overlay.opaque";
}

bool is_overlay_private_xattr(std::string_view key) noexcept {
  return key.substr(0, 16) == "trusted.overlay." || key.substr(0, 13) == "user.overlay.";
}

void make_overlay_whiteout(int dirfd, const std::string& name, std::string_view shown) {
  sys::mknodat(dirfd, name, S_IFCHR | 0, makedev(0, 0), shown);
}

void make_overlay_opaque(int dirfd, const std::string& name, XattrNamespace ns, std::string_view shown) {
  sys::set_xattr(dirfd, name, opaque_xattr(ns), "y", shown);
}

bool is_overlay_whiteout(const struct stat& st) noexcept {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool is_overlay_opaque(int dirfd, const std::string& name, XattrNamespace ns, std::string_view shown) {
  auto v = sys::get_xattr(dirfd, name, opaque_xattr(ns), shown);
  return v && *v == "y";
}

oci::TarEntry whiteout_marker(const oci::TarEntry& device, std::string path) {
  oci::TarEntry m;
  m.path = std::move(path);
  m.type = oci::TarType::File;
  m.mode = 0600;
  m.uid = device.uid;
  m.gid = device.gid;
  m.mtime_sec = device.mtime_sec;
  m.mtime_nsec = device.mtime_nsec;
  return m;
}

oci::TarEntry opaque_marker(const oci::TarEntry& dir) {
  oci::TarEntry m;
  m.path = dir.path + "/" + std::string(kOpaqueMarker);
  m.type = oci::TarType::File;
  m.mode = dir.mode & 0777;
  m.uid = dir.uid;
  m.gid = dir.gid;
  return m;
}

}  // namespace cbuild::overlay
