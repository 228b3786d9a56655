// BuildContext — the build-context directory read into a file set, with .dockerignore
// applied: every file, directory and symlink that is not excluded, with its lstat data and
// link target. No contents are read or hashed here (the cache decides that from stat data).
//
// read() walks without following symlinks and never leaves the directory. It keeps what
// docker's client sends (DockerIgnore::context_verdict): an excluded directory is not
// descended into, unless a `!` pattern names something below it, in which case the directory
// is itself an entry and its entries are judged one by one. Entries are sorted by path. Throws
// cbuild::Error naming the path when the directory cannot be read. Immutable afterwards,
// so concurrent reads are safe.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "builder/context/dockerignore.h"

namespace cbuild::builder {

struct ContextEntry {
  std::string path;         // relative to the context root, "/"-separated ("src/main.c")
  struct stat st {};        // lstat data
  std::string link_target;  // for symlinks
};

class BuildContext {
 public:
  static BuildContext read(const std::filesystem::path& dir, const DockerIgnore& ignore);

  const std::filesystem::path& root() const noexcept { return root_; }
  const DockerIgnore& ignore() const noexcept { return ignore_; }
  const std::vector<ContextEntry>& entries() const noexcept { return entries_; }
  // The entry at `path` (cleaned; "" or "." is not an entry), or nullptr.
  const ContextEntry* find(std::string_view path) const;
  // A predicate for copy code: true when a context-relative path is excluded (see
  // context_exclusion(); null without patterns).
  std::function<bool(const std::string&)> excluded_predicate() const;

 private:
  std::filesystem::path root_;
  DockerIgnore ignore_;
  std::vector<ContextEntry> entries_;
};

// The .dockerignore predicate copy code and RUN --mount take for the context directory `dir`:
// true when docker leaves the context-relative path out of what it sends. A path whose fate
// depends on its being a directory is lstat'ed inside `dir` (never outside it). Null when
// `ignore` has no patterns. Thread-safe; throws cbuild::Error when `dir` cannot be opened.
std::function<bool(const std::string&)> context_exclusion(const std::filesystem::path& dir, DockerIgnore ignore);

}  // namespace cbuild::builder
