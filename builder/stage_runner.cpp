#include "builder/stage_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include "builder/add_archive.h"
#include "builder/copy_files.h"
#include "builder/run_command.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/descriptor.h"
#include "oci/image_config.h"
#include "overlay/init_layer.h"
#include "overlay/safe_path.h"
#include "overlay/sandbox.h"
#include "overlay/user_db.h"

namespace cbuild::builder {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kHistoryComment = "buildkit.dockerfile.v0";

json& cfg(ConfigDoc& c) {
  if (!c.contains("config") || !c["config"].is_object()) c["config"] = json::object();
  return c["config"];
}

std::string config_string(const ConfigDoc& c, const char* key) {
  if (c.contains("config") && c["config"].is_object() && c["config"].contains(key) && c["config"][key].is_string())
    return c["config"][key].get<std::string>();
  return "";
}

void add_history(ConfigDoc& c, const ExecStep& step, std::int64_t created, bool empty_layer) {
  json h = {{"created", oci::rfc3339_utc(created)}, {"created_by", step.created_by}, {"comment", kHistoryComment}};
  if (empty_layer) h["empty_layer"] = true;
  if (!c.contains("history") || !c["history"].is_array()) c["history"] = json::array();
  c["history"].push_back(std::move(h));
  c["created"] = oci::rfc3339_utc(created);
}

void add_layer(ImageState& st, const oci::LayerResult& layer) {
  st.stack.layers.push_back(layer.descriptor);
  st.stack.diff_ids.push_back(layer.diff_id);
  if (!st.config.contains("rootfs") || !st.config["rootfs"].is_object())
    st.config["rootfs"] = {{"type", "layers"}, {"diff_ids", json::array()}};
  st.config["rootfs"]["diff_ids"].push_back(layer.diff_id.str());
}

// An absolute, cleaned image path: `p` as is when absolute, else joined to WORKDIR.
std::string join_image_path(const std::string& workdir, const std::string& p) {
  if (!p.empty() && p[0] == '/') return "/" + overlay::clean_path(p);
  return "/" + overlay::clean_path((workdir.empty() ? std::string("/") : workdir) + "/" + p);
}

// mkdir -p inside the root; directories it creates belong to uid:gid (docker's WORKDIR and
// COPY parent semantics). Existing directories are left as they are.
void mkdir_owned(int root_fd, const std::string& path, uid_t uid, gid_t gid) {
  std::string cleaned = overlay::clean_path(path);
  if (cleaned.empty()) return;
  std::string prefix;
  std::size_t i = 0;
  while (i <= cleaned.size()) {
    std::size_t j = cleaned.find('/', i);
    if (j == std::string::npos) j = cleaned.size();
    prefix = cleaned.substr(0, j);
    auto pl = overlay::open_parent_in_root(root_fd, prefix, false);
    struct stat st {};
    if (::fstatat(pl.dir.get(), pl.leaf.c_str(), &st, 0) != 0) {
      if (::mkdirat(pl.dir.get(), pl.leaf.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir", "/" + prefix);
      if (::fchownat(pl.dir.get(), pl.leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chown", "/" + prefix);
    } else if (!S_ISDIR(st.st_mode)) {
      throw Error(ErrorKind::FailedPrecondition, "/" + prefix + " exists and is not a directory");
    }
    i = j + 1;
  }
}

}  // namespace

std::vector<std::string> shell_of(const ConfigDoc& c) {
  if (c.contains("config") && c["config"].is_object() && c["config"].contains("Shell") &&
      c["config"]["Shell"].is_array() && !c["config"]["Shell"].empty()) {
    std::vector<std::string> out;
    for (const auto& w : c["config"]["Shell"])
      if (w.is_string()) out.push_back(w.get<std::string>());
    if (!out.empty()) return out;
  }
  return {"/bin/sh", "-c"};
}

namespace {

struct Stepper {
  StageEnv& env;
  ImageState& st;
  const ExecStep& step;

  std::optional<CacheRecord> lookup(const oci::Digest& key) {
    if (env.options.no_cache) return std::nullopt;
    return env.cache.find(key, env.fs.store);
  }

  StepResult take(const oci::Digest& key, const CacheRecord& r) {
    st.config = json::parse(r.config_json);
    if (r.layer) {
      st.stack.layers.push_back(*r.layer);
      st.stack.diff_ids.push_back(*r.diff_id);
    }
    st.cache_key = key.str();
    return StepResult{.cached = true};
  }

  void remember(const oci::Digest& key, const std::optional<oci::LayerResult>& layer) {
    CacheRecord r;
    r.config_json = st.config.dump();
    if (layer) {
      r.layer = layer->descriptor;
      r.diff_id = layer->diff_id;
    }
    r.created = static_cast<std::int64_t>(std::time(nullptr));
    env.cache.put(key, r);
    st.cache_key = key.str();
  }

  StepResult fs_result(const FsStepResult& r) {
    return StepResult{.layer_bytes = static_cast<std::uint64_t>(r.layer.descriptor.size),
                      .frames = r.layer.frames,
                      .frames_reused = r.layer.frames_reused};
  }

  StepResult operator()(const ConfigOp& op) {
    oci::Digest key = BuildCache::key(st.cache_key, "config\n" + step.cache_inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    op.apply(st.config);
    add_history(st.config, step, env.created, true);
    remember(key, std::nullopt);
    return {};
  }

  StepResult operator()(const WorkdirOp& op) {
    oci::Digest key = BuildCache::key(st.cache_key, "workdir\n" + step.cache_inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    std::string user = config_string(st.config, "User");
    std::string path = join_image_path(config_string(st.config, "WorkingDir"), op.path);
    FsStepResult r = run_fs_step(env.fs, st.stack, [&](const fs::path& merged) {
      overlay::ExecUser u = user.empty() ? overlay::ExecUser{} : overlay::resolve_user_in_rootfs(user, merged);
      UniqueFd root = open_file(merged, O_RDONLY | O_DIRECTORY);
      mkdir_owned(root.get(), path, u.uid, u.gid);
    });
    cfg(st.config)["WorkingDir"] = path;
    add_layer(st, r.layer);
    ExecStep h = step;
    h.created_by = "WORKDIR " + path;
    add_history(st.config, h, env.created, false);
    remember(key, r.layer);
    return fs_result(r);
  }

  StepResult copy_from_root(const CopyOp& op, int src_fd, bool keep_owner) {
    std::string dest = join_image_path(config_string(st.config, "WorkingDir"), op.dest);
    // The trailing "/" (or a final ".") says "into this directory": keep it through cleaning.
    bool into_dir = op.dest.empty() || op.dest.back() == '/' || op.dest == "." ||
                    (op.dest.size() >= 2 && op.dest.compare(op.dest.size() - 2, 2, "/.") == 0);
    if (into_dir && dest.back() != '/') dest += '/';
    CopySpec spec{.sources = op.sources, .dest = dest, .chmod = op.chmod, .keep_owner = keep_owner};
    if (op.from == CopyOp::From::Context) spec.excluded = env.context_excluded;
    // The key: what the sources hold (content, modes, links — not mtimes) and the instruction.
    CopyPlan key_plan = plan_copy(src_fd, spec, nullptr);
    std::string inputs = "copy\n" + step.cache_inputs + "\nchown=" + op.chown + "\ndest=" + dest + "\ncontent=" +
                         content_key(src_fd, key_plan, spec).str();
    oci::Digest key = BuildCache::key(st.cache_key, inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    FsStepResult r = run_fs_step(env.fs, st.stack, [&](const fs::path& merged) {
      CopySpec s = spec;
      if (!op.chown.empty()) {
        overlay::ExecUser u = overlay::resolve_user_in_rootfs(op.chown, merged);
        s.uid = u.uid;
        s.gid = u.gid;
      }
      UniqueFd dst = open_file(merged, O_RDONLY | O_DIRECTORY);
      auto is_dir = [&](const std::string& p) {
        try {
          UniqueFd d = overlay::open_in_root(dst.get(), p, O_RDONLY | O_DIRECTORY);
          return true;
        } catch (const Error&) {
          return false;
        }
      };
      if (op.add) {
        // ADD extracts local tar archives into the destination directory; other sources copy.
        std::vector<std::string> plain;
        for (const auto& src : s.sources) {
          UniqueFd f;
          try {
            f = overlay::open_in_root(src_fd, src, O_RDONLY);
          } catch (const Error&) {
            plain.push_back(src);  // wildcards and directories go through the copy rules
            continue;
          }
          struct stat sst {};
          if (::fstat(f.get(), &sst) == 0 && S_ISREG(sst.st_mode) && is_tar_archive(f.get())) {
            UniqueFd d = overlay::mkdir_in_root(dst.get(), dest);
            extract_tar_archive(f.get(), "/proc/self/fd/" + std::to_string(d.get()), src);
          } else {
            plain.push_back(src);
          }
        }
        s.sources = plain;
        if (s.sources.empty()) return;
      }
      CopyPlan plan = plan_copy(src_fd, s, is_dir);
      apply_copy(src_fd, dst.get(), plan, s);
    });
    add_layer(st, r.layer);
    add_history(st.config, step, env.created, false);
    remember(key, r.layer);
    return fs_result(r);
  }

  StepResult operator()(const CopyOp& op) {
    if (!op.inline_files.empty()) {
      TempDir files;
      for (const auto& [name, content] : op.inline_files) write_file_atomic(files.path() / name, content, 0644);
      UniqueFd fd = open_file(files.path(), O_RDONLY | O_DIRECTORY);
      return copy_from_root(op, fd.get(), false);
    }
    switch (op.from) {
      case CopyOp::From::Context: {
        UniqueFd fd = open_file(env.context, O_RDONLY | O_DIRECTORY);
        return copy_from_root(op, fd.get(), false);
      }
      case CopyOp::From::Stage: {
        const ImageState& src = env.stage_result(op.stage);
        StepResult out;
        with_view(env.fs, src.stack, [&](const fs::path& root) {
          UniqueFd fd = open_file(root, O_RDONLY | O_DIRECTORY);
          out = copy_from_root(op, fd.get(), true);
        });
        return out;
      }
      case CopyOp::From::Image: {
        ImageState src = env.image(op.image);
        StepResult out;
        with_view(env.fs, src.stack, [&](const fs::path& root) {
          UniqueFd fd = open_file(root, O_RDONLY | O_DIRECTORY);
          out = copy_from_root(op, fd.get(), true);
        });
        return out;
      }
    }
    throw Error(ErrorKind::Internal, "COPY: unknown source kind");
  }

  StepResult operator()(const RunOp& op) {
    bool none = op.network_none.value_or(env.options.network == NetworkMode::None);
    std::string inputs = "run\n" + step.cache_inputs + "\nnetwork=" + (none ? "none" : "host");
    oci::Digest key = BuildCache::key(st.cache_key, inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    if (!op.mounts.empty())
      throw Error(ErrorKind::InvalidArgument, "RUN --mount is not supported yet");
    TempDir init;
    overlay::NetworkMode net = none ? overlay::NetworkMode::None : overlay::NetworkMode::Host;
    overlay::write_init_files(init.path(), overlay::InitFilesOptions{.hostname = "cbuild", .network = net});
    overlay::RunSpec spec;
    spec.argv = op.shell_form ? shell_of(st.config) : std::vector<std::string>{};
    spec.argv.insert(spec.argv.end(), op.argv.begin(), op.argv.end());
    std::string shown;
    for (const auto& a : spec.argv) shown += (shown.empty() ? "" : " ") + a;
    spec.env = op.env;
    std::string wd = config_string(st.config, "WorkingDir");
    spec.cwd = wd.empty() ? "/" : wd;
    spec.user = config_string(st.config, "User");
    spec.hostname = "cbuild";
    spec.network = net;
    spec.init_files = init.path();
    std::vector<std::string> exclude = overlay::Sandbox::stub_paths(spec);
    for (auto& p : overlay::init_file_paths()) exclude.push_back(p);
    StepRef ref{.vertex = current_vertex, .text = step.text, .line = step.line};
    FsStepResult r = run_fs_step(
        env.fs, st.stack,
        [&](const fs::path& merged) {
          spec.rootfs = merged;
          RunOutcome out = run_with_output(spec, env.progress, ref);
          if (!out.status.ok()) {
            std::string msg = "process \"" + shown + "\" did not complete successfully: exit code: " +
                              std::to_string(out.status.code);
            if (!out.tail.empty()) {
              msg += "\n------ last lines of output ------";
              for (const auto& l : out.tail) msg += "\n > " + l;
              msg += "\n---------------------------------";
            }
            throw Error(ErrorKind::FailedPrecondition, msg);
          }
        },
        exclude);
    add_layer(st, r.layer);
    ExecStep h = step;
    if (h.created_by.empty()) h.created_by = "RUN " + op.history_args + shown + " # buildkit";
    add_history(st.config, h, env.created, false);
    remember(key, r.layer);
    return fs_result(r);
  }

  int current_vertex = 0;
};

}  // namespace

ConfigDoc scratch_config(const std::string& platform) {
  oci::Platform p = platform.empty() ? oci::Platform::host() : oci::Platform::parse(platform);
  ConfigDoc c = {{"architecture", p.architecture},
                 {"os", p.os},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}},
                 {"history", json::array()}};
  if (!p.variant.empty()) c["variant"] = p.variant;
  return c;
}

void apply_from_defaults(ConfigDoc& config) {
  json& c = cfg(config);
  if (!c.contains("Env") || !c["Env"].is_array()) c["Env"] = json::array();
  for (const auto& e : c["Env"])
    if (e.is_string() && e.get<std::string>().rfind("PATH=", 0) == 0) return;
  c["Env"].insert(c["Env"].begin(), kDefaultPath);
}

ImageState run_stage(const ExecStage& stage, ImageState st, StageEnv& env) {
  const int count = static_cast<int>(stage.steps.size());
  std::string stage_name = stage.name.empty() ? "stage-" + std::to_string(stage.index) : stage.name;
  for (int i = 0; i < count; ++i) {
    const ExecStep& step = stage.steps[static_cast<std::size_t>(i)];
    StepRef ref{.vertex = env.next_vertex(), .stage = stage_name, .index = i + 1, .count = count, .text = step.text,
                .line = step.line};
    env.progress.step_started(ref);
    auto t0 = std::chrono::steady_clock::now();
    try {
      check_cancelled();
      Stepper s{env, st, step};
      s.current_vertex = ref.vertex;
      StepResult res = std::visit([&](const auto& op) { return s(op); }, step.op);
      res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      env.progress.step_done(ref, res);
    } catch (const Error& e) {
      // A step that ends while the build is being stopped was cancelled, whatever its own
      // error says (a RUN whose command got the terminal's SIGINT exits 130 on its own).
      if (e.kind() == ErrorKind::Cancelled || cancel_requested()) {
        env.progress.step_cancelled(ref);
        throw Error(ErrorKind::Cancelled, interrupted() ? "interrupted" : "cancelled");
      }
      env.progress.step_failed(ref, e.what());
      throw Error(e.kind(), env.dockerfile + ":" + std::to_string(step.line) + ": " + step.text + ": " + e.what());
    }
  }
  return st;
}

}  // namespace cbuild::builder
