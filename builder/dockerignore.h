// .dockerignore with moby/patternmatcher semantics (what docker build and BuildKit use).
//
// Patterns are read like moby's ignorefile.ReadAll: a line starting with `#` is a comment,
// lines are trimmed, `!` starts an exception, paths are cleaned (`dir/` → `dir`, `./a` →
// `a`) and a leading `/` is dropped. Matching is patternmatcher.MatchesOrParentMatches: the
// last matching pattern wins, a pattern also matches everything below a matching
// directory, `*` and `?` never cross `/`, `**` spans any number of directories, `[...]`
// classes and `\` escapes work as in Go. load() picks `<Dockerfile>.dockerignore` next to
// the Dockerfile before `<context>/.dockerignore`.
//
// Immutable after construction; excluded() is thread-safe. Throws cbuild::Error
// {InvalidArgument} naming the file for a bad pattern (e.g. a lone `!`, an unclosed `[`).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cbuild::builder {

class DockerIgnore {
 public:
  DockerIgnore();  // matches nothing
  ~DockerIgnore();
  DockerIgnore(DockerIgnore&&) noexcept;
  DockerIgnore& operator=(DockerIgnore&&) noexcept;
  DockerIgnore(const DockerIgnore&);
  DockerIgnore& operator=(const DockerIgnore&);

  // Parses .dockerignore text; `source` names it in error messages.
  static DockerIgnore parse(std::string_view text, std::string_view source = ".dockerignore");
  // The ignore file that applies to a build: `<dockerfile>.dockerignore` beside the
  // Dockerfile if it exists, else `<context>/.dockerignore`, else none.
  static DockerIgnore load(const std::filesystem::path& context_dir, const std::filesystem::path& dockerfile);

  // `path` is relative to the context root, "/"-separated ("a/b.txt"; a leading "./" or "/"
  // is ignored). True when the file or one of its parent directories is excluded.
  bool excluded(std::string_view path) const;
  // True when some pattern is an exception (`!…`): an excluded directory may then still
  // contain included files, so a walker must descend into it.
  bool has_exceptions() const;
  // The cleaned patterns in order ("!" prefix for exceptions), as read.
  const std::vector<std::string>& patterns() const;
  // Where the patterns came from ("" when no file applied).
  const std::string& source() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Go's path.Clean for "/"-separated paths.
std::string clean_path(std::string_view path);

}  // namespace cbuild::builder
