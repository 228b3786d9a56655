// Whiteouts: the one place that knows both spellings of "deleted" and "opaque".
//
// OCI layers (image-spec layer.md) mark a deleted path NAME with an empty entry ".wh.NAME"
// and an opaque directory (hide everything below from lower layers) with ".wh..wh..opq".
// overlayfs marks a deleted path with a 0/0 character device and an opaque directory with the
// xattr "<ns>.overlay.opaque" = "y", where <ns> is "trusted" (real root) or "user" (rootless,
// the userxattr mount option). The applier converts OCI → overlay, the differ overlay → OCI;
// no other file compares names against ".wh.". All functions are thread-safe.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

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

}  // namespace cbuild::overlay
