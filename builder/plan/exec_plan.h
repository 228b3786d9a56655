// ExecPlan — what the executor runs: stages of *semantic* operations, already expanded and
// decided by the front end (builder/plan/plan.h → to_exec_plan()). The executor never looks at
// Dockerfile syntax; tests build ExecPlans directly.
//
//   ConfigOp   edits the image config only (ENV, LABEL, CMD, USER, …): a history entry with
//              empty_layer, no filesystem change.
//   WorkdirOp  sets WorkingDir and creates the directory (a layer, like BuildKit).
//   CopyOp     COPY/ADD from the context, another stage or an image.
//   RunOp      RUN in the sandbox.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace cbuild::builder {

// The image config document being built ({"architecture":…, "config":{…}, "history":[…]…}).
using ConfigDoc = nlohmann::json;

struct ConfigOp {
  // Applies the instruction to the config. Must be deterministic: its effect is cached under
  // the step's cache inputs.
  std::function<void(ConfigDoc&)> apply;
  bool history = true;  // false: no history entry (BuildKit writes none for ONBUILD)
};

struct WorkdirOp {
  std::string path;  // absolute, already joined with the previous WORKDIR
};

// Whether a COPY/ADD destination, as written, names a directory to copy into: empty, ".",
// or ending in "/" or "/." (docker's spelling rule; an existing directory there is one too).
inline bool dest_names_directory(std::string_view dest) {
  return dest.empty() || dest.back() == '/' || dest == "." || dest.ends_with("/.");
}

struct CopyOp {
  enum class From { Context, Stage, Image } from = From::Context;
  int stage = -1;                    // From::Stage
  std::string image;                 // From::Image: a reference
  std::vector<std::string> sources;  // expanded
  std::string dest;                  // expanded, as written (relative to WORKDIR if not absolute)
  std::string chown;                 // "user[:group]" as written, resolved in the image
  std::optional<std::uint32_t> chmod;
  bool add = false;                  // ADD: extract local tar archives
  // Heredoc files (COPY <<EOF): name → content, written instead of context files.
  std::vector<std::pair<std::string, std::string>> inline_files;
  bool parents = false;              // COPY --parents: keep each source's parent directories
  std::vector<std::string> excludes; // --exclude patterns, matched below each source
  // --link: the layer is made in an empty tree (it never reads the image below), and its cache
  // key leaves the parent layers out, so it is reused whatever the base is.
  bool link = false;
  // ADD http(s) sources, fetched at build time (never extracted); `sources` holds the others.
  std::vector<std::string> urls;
  std::string checksum;              // ADD --checksum=sha256:… for the one URL source
};

// One RUN --mount, expanded (builder/steps/run_mounts.h gives the semantics).
struct RunMount {
  enum class Type { Bind, Cache, Tmpfs, Secret } type = Type::Bind;
  std::string target;       // as written (relative: joined with WORKDIR); secret: may be empty (env only)
  std::string source;       // bind/cache: path in the context or the `from` root ("": its root)
  int from_stage = -1;      // bind/cache from a stage (-1: none)
  std::string from_image;   // bind/cache from an image reference ("" with from_stage -1: the
                            // context for bind, an empty directory for cache)
  bool readonly = true;     // bind defaults to read-only
  std::string id;           // cache id (default: target) / secret id
  std::string sharing = "shared";
  bool required = false;    // secret
  std::string env;          // secret: also expose as this environment variable
  std::optional<std::uint32_t> mode, uid, gid;
  std::optional<std::uint64_t> size;  // tmpfs size in bytes
  std::string text;         // the --mount value as rendered for messages ("type=bind,source=x,target=/x")
};

struct RunOp {
  // JSON form: the argv. Shell form (shell_form): one script, run as SHELL + [script], with
  // the SHELL in the config at that point (docker's "Shell", default /bin/sh -c).
  std::vector<std::string> argv;
  bool shell_form = false;
  std::string history_args;  // BuildKit's "|N K=V … " prefix of created_by for ARGs in scope
  std::vector<std::string> env;   // ARG and ENV in scope, "K=V" (ARGs only here, never in config)
  std::optional<bool> network_none;  // RUN --network; nullopt: the build's --network
  std::vector<RunMount> mounts;
  // A RUN whose only command is a heredoc starting with "#!" (BuildKit): the heredoc becomes the
  // file /dev/pipes/<name>, mode 0755, in a read-only directory mount of its own, and argv is
  // that path, so the kernel runs it with the interpreter its first line names.
  static constexpr std::string_view kScriptDir = "/dev/pipes";
  struct ScriptFile {
    std::string name;
    std::string content;
  };
  std::optional<ScriptFile> script_file;
};

using Op = std::variant<ConfigOp, WorkdirOp, CopyOp, RunOp>;

struct ExecStep {
  Op op;
  std::string text;        // the instruction as shown in progress ("RUN make")
  int line = 0;            // Dockerfile line
  std::string created_by;  // history entry ("RUN /bin/sh -c make # buildkit")
  std::string cache_inputs;  // everything the step depends on besides its parent and files read
};

struct ExecStage {
  std::string name;   // as named with AS, else empty
  int index = 0;
  enum class Base { Scratch, Image, Stage } base = Base::Scratch;
  std::string base_image;  // Base::Image: reference as written (normalized by the executor)
  int base_stage = -1;     // Base::Stage
  std::string platform;    // FROM --platform (metadata)
  std::vector<ExecStep> steps;
  // Base::Image: the image's ONBUILD triggers, which the plan made the first steps of this
  // stage; nullopt when the plan did not know the image. The executor refuses a base whose
  // config says otherwise, rather than build without (or with other) triggers.
  std::optional<std::vector<std::string>> base_onbuild;
};

struct ExecPlan {
  std::string dockerfile;          // path shown in messages
  std::vector<ExecStage> stages;   // in Dockerfile order; only those the target needs are run
  int target = -1;                 // the stage whose image is the result (default: the last)
};

}  // namespace cbuild::builder
