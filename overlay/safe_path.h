// Resolving untrusted paths (from a layer tar or a build context) inside a root directory.
//
// These functions are the ONLY way the overlay module turns such a path into an fd. Every
// component is resolved as if `root_fd` were "/": ".." never climbs above it, absolute
// symlinks restart at it, relative symlinks stay under it, magic links (/proc/self/fd/N)
// are refused. With openat2 this is RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS; without it
// (old kernel, or CBUILD_NO_OPENAT2=1) a component-by-component walk that keeps its own stack
// of directory fds, so a ".." is answered by that stack and never by the kernel.
//
// A path is "/"-separated; leading "/" is ignored (absolute means "inside the root").
// Functions that create something never follow the last component: callers get the parent
// directory and the leaf name and create with *at() calls. All throw cbuild::Error naming
// the path (NotFound, InvalidArgument for ELOOP/"." leaves, …). Thread-safe.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "oci/base/unique_fd.h"

namespace cbuild::overlay {

// Opens `path` inside the root. flags are open(2) flags (O_PATH, O_DIRECTORY, O_NOFOLLOW for
// the leaf, O_CREAT…); O_CLOEXEC is always added.
UniqueFd open_in_root(int root_fd, std::string_view path, int flags, mode_t mode = 0);

// Creates every missing directory of `path` inside the root (like mkdir -p, new ones get
// `mode`) and returns an O_DIRECTORY fd of the last one. An existing non-directory on the
// way is an error (ENOTDIR); symlinks on the way are followed inside the root.
UniqueFd mkdir_in_root(int root_fd, std::string_view path, mode_t mode = 0755);

// Lexically cleans `path` as if it were absolute: drops "", "." and a ".." at the top,
// resolves inner ".." against the previous component. Returns "" for the root itself.
// "a/../../b" → "b", "/x//y/." → "x/y".
std::string clean_path(std::string_view path);

// The parent directory of a (cleaned, non-empty) path, opened inside the root, and the leaf.
struct ParentAndLeaf {
  UniqueFd dir;
  std::string leaf;
  std::string path;  // the cleaned path, for messages
};
// `create_parents`: make missing parent directories (0755). Throws InvalidArgument when the
// cleaned path is the root itself.
ParentAndLeaf open_parent_in_root(int root_fd, std::string_view path, bool create_parents);

// Where `path` leads inside a root, as containerd's fs.RootPath answers it (BuildKit resolves
// a COPY destination so): every symlink on the way, the last one too, is followed inside the
// root (".." stops at the root, an absolute target restarts at it), and what does not exist
// (a missing name, a dangling link's target) is kept as written, so the result may name
// nothing yet. `link_at(p)` gives the target of the cleaned in-root path `p` when it is a
// symlink, nullopt otherwise (missing included); its parents are always already resolved.
// Returns a cleaned path ("" for the root); ELOOP (InvalidArgument) after 40 links.
std::string resolve_links(std::string_view path,
                          const std::function<std::optional<std::string>(const std::string&)>& link_at);
// resolve_links() over the directory `root_fd`.
std::string resolve_in_root(int root_fd, std::string_view path);

// The path of `fd` (opened inside the root, e.g. by open_in_root) relative to `root_fd`, ""
// for the root itself, read from the kernel (/proc/self/fd) after every symlink was resolved.
// `what` names the path in the Internal error thrown if it is outside the root.
std::string path_in_root(int root_fd, int fd, std::string_view what);

}  // namespace cbuild::overlay
