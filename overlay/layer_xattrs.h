// Which extended attributes a layer carries. docker build's layers (the overlay2 graphdriver's
// diff, moby's pkg/archive) hold only security.capability: user.*, trusted.*, security.selinux
// and the rest stay on the disk they were set on, whoever set them (a RUN, an ADDed archive,
// a base layer a RUN copies up). cbuild's writers of layers — the differ (differ.h), the tree
// diff (tree_diff.h) and the streamed layer (builder/steps/layer_tree.h) — keep the same ones,
// so the same build gives docker's layer. Applying a layer (applier.h) still sets every xattr
// its tar holds: an image from elsewhere keeps what it carries.
#pragma once

#include <string_view>

namespace cbuild::overlay {

inline constexpr std::string_view kCapabilityXattr = "security.capability";

// True for the xattrs a layer's tar entry keeps.
inline bool layer_keeps_xattr(std::string_view key) noexcept { return key == kCapabilityXattr; }

}  // namespace cbuild::overlay
