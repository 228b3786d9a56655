// Typed Dockerfile instructions: a std::variant of one struct per instruction, built from the
// syntax tree (ast.h) with every --flag parsed and validated the way BuildKit does.
//
// Words are kept as written (not yet expanded): the planner expands them where BuildKit
// does, with the ARG/ENV scope of each step (see builder/plan/plan.h). Typing never touches disk.
// type_instructions() throws DockerfileError ("FILE:LINE: message" naming the instruction,
// with a suggestion where one is obvious) and appends warnings (deprecated MAINTAINER,
// JSON-looking arguments that are not JSON). Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "builder/dockerfile/ast.h"

namespace cbuild::builder::dockerfile {

struct KeyValue {
  std::string key;
  std::string value;
  bool operator==(const KeyValue&) const = default;
};

struct FromInstr {
  std::string image;     // image reference, a stage name, or "scratch" (unexpanded)
  std::string name;      // AS name, lower-cased; empty when absent
  std::string platform;  // --platform value (unexpanded); empty when absent
};

struct RunMount {
  enum class Type { Bind, Cache, Tmpfs, Secret } type = Type::Bind;
  std::string target;        // for secrets defaults to /run/secrets/<id>
  std::string source;        // bind/cache: path within `from` (or the context); empty: root
  std::string from;          // stage name/index or image; empty: the build context (bind) / none
  bool readonly = false;     // bind defaults to read-only, cache/tmpfs to read-write
  std::string id;            // cache id (default: target) / secret id (default: basename of target)
  std::string sharing = "shared";  // cache: shared | private | locked
  bool required = false;     // secret
  std::string env;           // secret: also (or instead) expose as this environment variable
  std::optional<std::uint32_t> mode, uid, gid;
  std::optional<std::uint64_t> size;  // tmpfs size in bytes
};

struct RunInstr {
  std::vector<std::string> command;  // JSON form: argv; shell form: one string
  bool json = false;
  std::vector<RunMount> mounts;      // string fields unexpanded
  std::string network;               // "" (default) | "default" | "none" | "host"
  std::string security;              // "" | "sandbox" | "insecure"
  // Bodies as written, even with `<<-`: BuildKit decides on the raw body (a "#!" script or
  // not) and hands it to the shell unchomped when the heredoc is not the whole command.
  std::vector<Heredoc> heredocs;
};

struct CmdInstr {
  std::vector<std::string> command;
  bool json = false;
};

struct EntrypointInstr {
  std::vector<std::string> command;
  bool json = false;
};

struct ShellInstr {
  std::vector<std::string> shell;  // always JSON form, non-empty
};

struct EnvInstr {
  std::vector<KeyValue> pairs;  // values as written (quotes kept; the planner expands)
};

struct LabelInstr {
  std::vector<KeyValue> pairs;
};

struct ArgInstr {
  struct Arg {
    std::string name;
    std::optional<std::string> default_value;  // as written
  };
  std::vector<Arg> args;
};

struct CopyInstr {
  bool add = false;                  // ADD
  std::vector<std::string> sources;  // as written; "<<NAME" names a heredoc
  std::string dest;
  bool json = false;
  std::string from;                  // COPY --from (stage name, index or image)
  std::string chown;                 // --chown user[:group]
  std::string chmod;                 // --chmod (validated as octal after expansion)
  bool link = false;
  bool parents = false;              // COPY --parents
  std::vector<std::string> excludes;  // --exclude (repeatable)
  std::string checksum;              // ADD --checksum
  std::optional<bool> keep_git_dir;  // ADD --keep-git-dir
  std::vector<Heredoc> heredocs;     // inline files; bodies chomped when `<<-`
};

struct ExposeInstr {
  std::vector<std::string> ports;  // as written ("8000-8010/TCP"); planned: "8000/tcp", …
};

struct VolumeInstr {
  std::vector<std::string> paths;
};

struct UserInstr {
  std::string user;  // user[:group]
};

struct WorkdirInstr {
  std::string path;
};

struct StopsignalInstr {
  std::string signal;
};

struct HealthcheckInstr {
  // ["NONE"], ["CMD", argv...] or ["CMD-SHELL", command], as in the image config.
  std::vector<std::string> test;
  // Nanoseconds; nullopt: inherit. 0 is not accepted for durations (BuildKit's minimum is 1ms).
  std::optional<std::int64_t> interval, timeout, start_period, start_interval;
  std::optional<int> retries;
};

struct MaintainerInstr {
  std::string name;
};

struct OnbuildInstr {
  std::string expression;       // the trigger as written after ONBUILD ("RUN make")
  std::vector<Heredoc> heredocs;
};

using Instruction = std::variant<FromInstr, RunInstr, CmdInstr, EntrypointInstr, ShellInstr, EnvInstr,
                                 LabelInstr, ArgInstr, CopyInstr, ExposeInstr, VolumeInstr, UserInstr,
                                 WorkdirInstr, StopsignalInstr, HealthcheckInstr, MaintainerInstr,
                                 OnbuildInstr>;

struct TypedInstruction {
  Instruction instr;
  std::string keyword;   // upper case ("COPY")
  std::string original;  // the instruction text as written (continuations joined)
  SourceRange range;
};

// Types one node. `file` names the Dockerfile in messages.
TypedInstruction type_instruction(const Node& node, std::string_view file,
                                  std::vector<DockerfileWarning>& warnings);
// Types every node of the tree, in order.
std::vector<TypedInstruction> type_instructions(const ParsedDockerfile& tree,
                                                std::vector<DockerfileWarning>& warnings);

// Parses a Go duration ("1m30s", "500ms", "1.5h") into nanoseconds; nullopt if malformed.
std::optional<std::int64_t> parse_go_duration(std::string_view s);
// Go's time.Duration.String() of `ns` nanoseconds: "1h2m0s", "1m30s", "1.5s", "500ms", "0s".
std::string go_duration_string(std::int64_t ns);
// The closest instruction keyword within a small edit distance, or "" (for "did you mean").
std::string suggest_instruction(std::string_view word);
// Removes leading tabs from every line of a `<<-` heredoc body.
std::string chomp_heredoc(std::string_view content);

}  // namespace cbuild::builder::dockerfile
