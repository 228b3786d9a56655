// .dockerignore with the semantics docker build (BuildKit) gives it.
//
// Two readings of the same patterns. excluded() is patternmatcher's MatchesOrParentMatches
// (what COPY --exclude and --parents use). context_verdict() is what docker 20.10's client
// (the oracle cbuild is compared with) sends of the build context, which differs: see there.
//
// Patterns are read like moby's ignorefile.ReadAll: a line starting with `#` is a comment,
// lines are trimmed, `!` starts an exception, paths are cleaned (`dir/` → `dir`, `./a` →
// `a`) and a leading `/` is dropped. In both readings the last matching pattern wins, a
// pattern also matches below a matching directory, `*` and `?` never cross `/`, `**` spans
// any number of directories, `[...]` classes and `\` escapes work as in Go. load() picks
// `<Dockerfile>.dockerignore` next to the Dockerfile before `<context>/.dockerignore`.
//
// Immutable after construction; the const methods are thread-safe. Throws cbuild::Error
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

  // IgnoreFile: a .dockerignore, which docker 20.10 turns into Go regexps escaping only `.` and
  // `$`, so a pattern using regexp syntax there (`+`, `(`, `|`, `^`, `{2}`, `\d`, `[:alpha:]`)
  // is refused (that reading is not implemented), and a leading `**` is "(.*/)?". Flag: the
  // patterns of COPY --exclude / --parents, read by today's patternmatcher (all literal).
  enum class Syntax { IgnoreFile, Flag };
  // Parses .dockerignore text; `source` names it in error messages.
  static DockerIgnore parse(std::string_view text, std::string_view source = ".dockerignore",
                            Syntax syntax = Syntax::IgnoreFile);
  // The ignore file that applies to a build: `<dockerfile>.dockerignore` beside the
  // Dockerfile if it exists, else `<context>/.dockerignore`, else none.
  static DockerIgnore load(const std::filesystem::path& context_dir, const std::filesystem::path& dockerfile);

  // `path` is relative to the context root, "/"-separated ("a/b.txt"; a leading "./" or "/"
  // is ignored). True when the file or one of its parent directories is excluded.
  bool excluded(std::string_view path) const;
  // What docker 20.10's client does with the context entry `path` (cleaned as for excluded()).
  // Its walker asks fileutils' old PatternMatcher.Matches of each path, which tries only the
  // parent with as many components as the pattern; a matching directory is left out with all
  // below it unless the text of some `!` pattern starts with "<dir>/", in which case the
  // directory itself is sent and its entries are judged one by one. So `*` + `!src/main.go`
  // sends src/ and src/main.go, and `dir` + `!dir/none` sends an empty dir/.
  enum class Verdict {
    Sent,
    Excluded,
    SentIfDirectory,  // matched, but a directory here would be sent (a file is not)
  };
  Verdict context_verdict(std::string_view path) const;
  // The same for an entry whose parent directories are known to be entered (a walk from the
  // top): only `path` itself is judged.
  Verdict entry_verdict(std::string_view path) const;
  // True when some pattern is an exception (`!…`): an excluded directory may then still
  // contain included files, so a walker must descend into it.
  bool has_exceptions() const;
  // The cleaned patterns in order ("!" prefix for exceptions), as read.
  const std::vector<std::string>& patterns() const;
  // Where the patterns came from ("" when no file applied).
  const std::string& source() const;

 private:
  bool matches_as_docker_client(std::string_view file) const;
  bool walk_enters(std::string_view dir) const;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Go's path.Clean for "/"-separated paths.
std::string clean_path(std::string_view path);

}  // namespace cbuild::builder
