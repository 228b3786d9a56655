// Whiteouts: the one place that knows both spellings of "deleted" and "opaque".
//
// OCI layers (image-spec layer.md) mark a deleted path NAME with an empty entry ".wh.NAME"
// and an opaque directory (hide everything below from lower layers) with ".wh..wh..opq".
// overlayfs marks a deleted path with a 0/0 character device and an opaque directory with the
// xattr "<ns>.overlay.opaque" = "y", where <ns> is "trusted" (real root) or "user" (rootless,
// the userxattr mount option). The applier converts OCI → overlay, the differ overlay → OCI;
// no other file compares names against ".wh.". All functions are thread-safe.
//
// The marker entries a layer holds have docker build's type, mode, owner and mtime (moby's
// overlay whiteout converter; user and group names aside, which cbuild writes for no entry): see
// whiteout_marker() and opaque_marker(), the one place every writer (differ, tree diff,
// streamed COPY layer) takes them from. Entry order is the one place cbuild departs: it writes
// a directory's entries sorted by their name in the layer (".wh.NAME", not NAME), where docker
// writes them in readdir order, the on-disk hash order of the directory, which is no property
// of the build and would make digests irreproducible.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

#include "oci/tar_entry.h"

namespace cbuild::overlay {

enum class XattrNamespace { Trusted, User };

inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

// What a layer entry's basename means.
enum class WhiteoutName {
  None,      // an ordinary name
  Whiteout,  // ".wh.NAME": delete NAME
  Opaque,    // ".wh..wh..opq": the parent directory is opaque
  Meta,      // any other ".wh..wh.*" (AUFS bookkeeping such as .wh..wh.plnk): ignored
};
WhiteoutName classify_whiteout(std::string_view basename) noexcept;
// For WhiteoutName::Whiteout, the name being deleted (".wh.foo" → "foo").
std::string whiteout_target(std::string_view basename);
// The OCI whiteout entry name for a deleted NAME ("foo" → ".wh.foo").
std::string whiteout_entry_name(std::string_view name);

// "<ns>.overlay.opaque"
std::string opaque_xattr(XattrNamespace ns);
// True for overlayfs' private xattrs ("trusted.overlay.*", "user.overlay.*") which must never
// reach a layer or a committed snapshot.
bool is_overlay_private_xattr(std::string_view key) noexcept;

// overlay → disk: a whiteout device for dirfd/name (throws on failure), the opaque xattr.
void make_overlay_whiteout(int dirfd, const std::string& name, std::string_view shown);
void make_overlay_opaque(int dirfd, const std::string& name, XattrNamespace ns, std::string_view shown);

// disk → OCI: is this stat an overlay whiteout (char device 0/0)? Is dirfd/name opaque?
bool is_overlay_whiteout(const struct stat& st) noexcept;
bool is_overlay_opaque(int dirfd, const std::string& name, XattrNamespace ns, std::string_view shown);

// The layer entry `path` (".wh.NAME") for the whiteout `device` (its entry from the stat of
// the 0/0 device): a regular file, mode 0600, size 0, no xattrs, the device's owner and mtime.
oci::TarEntry whiteout_marker(const oci::TarEntry& device, std::string path);
// The "DIR/.wh..wh..opq" entry for the opaque directory `dir` (its entry from its stat): a
// regular file, size 0, no xattrs, the directory's owner and permission bits without
// setuid/setgid/sticky (moby masks with 0777), and mtime 0 (moby sets none).
oci::TarEntry opaque_marker(const oci::TarEntry& dir);

}  // namespace cbuild::overlay
