#include "builder/steps/stage_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>

#include "builder/steps/copy_step.h"
#include "builder/plan/plan.h"
#include "builder/plan/plan_adapter.h"
#include "builder/steps/run_command.h"
#include "builder/steps/run_mounts.h"
#include "builder/steps/run_platform.h"
#include "builder/dockerfile/valid_utf8.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/descriptor.h"
#include "oci/image_config.h"
#include "overlay/init_layer.h"
#include "overlay/safe_path.h"
#include "overlay/sandbox.h"
#include "overlay/user_db.h"
#include "registry-client/curl_http.h"

namespace cbuild::builder {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

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

std::string config_top_string(const ConfigDoc& c, const char* key) {
  if (c.contains(key) && c[key].is_string()) return c[key].get<std::string>();
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

// The owner of the directories WORKDIR makes: BuildKit's file-op rule (COPY --chown's), not
// RUN's. A numeric user without a group is its own group whatever passwd says ("1001" makes
// 1001:1001, where RUN gets gid 0 or passwd's); names and explicit groups resolve as for RUN.
overlay::ExecUser workdir_owner(const std::string& user, const fs::path& rootfs) {
  if (user.empty()) return {};
  if (user.size() <= 10 && user.find_first_not_of("0123456789") == std::string::npos) {
    unsigned long long id = std::strtoull(user.c_str(), nullptr, 10);
    if (id <= 0xFFFFFFFFull) {
      overlay::ExecUser u;
      u.uid = u.gid = static_cast<std::uint32_t>(id);
      return u;
    }
  }
  return overlay::resolve_user_in_rootfs(user, rootfs);
}

}  // namespace

namespace {

struct Stepper {
  StageEnv& env;
  ImageState& st;
  const ExecStep& step;

  // Whether record `r` describes the layers the image has so far plus its own: a record
  // (perhaps imported from another machine's cache) that does not would give an image whose
  // config lies about its layers, so it is a miss.
  bool fits(const CacheRecord& r) const {
    json config = json::parse(r.config_json, nullptr, /*allow_exceptions=*/false);
    if (!config.is_object()) return false;
    std::vector<oci::Digest> expected = st.stack.diff_ids;
    if (r.diff_id) expected.push_back(*r.diff_id);
    if (!config.contains("rootfs") || !config["rootfs"].is_object() || !config["rootfs"].contains("diff_ids") ||
        !config["rootfs"]["diff_ids"].is_array())
      return expected.empty();
    const json& ids = config["rootfs"]["diff_ids"];
    if (ids.size() != expected.size()) return false;
    for (std::size_t i = 0; i < expected.size(); ++i)
      if (!ids[i].is_string() || ids[i].get<std::string>() != expected[i].str()) return false;
    return true;
  }

  // `parent`: the key `key` chains from (for the --cache-to log). `whole_step`: the record is
  // the step's result on this image (not a stand-alone COPY --link layer).
  std::optional<CacheRecord> lookup(const oci::Digest& key, const std::string& parent, bool whole_step = true) {
    if (env.options.no_cache) return std::nullopt;
    auto ok = [&](const CacheRecord& r) { return !whole_step || fits(r); };
    auto r = env.cache.find(key, env.fs.store);
    if (r && !ok(*r)) r.reset();
    // A hit's layer joins the build's lease, so a prune running meanwhile cannot take it
    // between the hit and the tag; a blob gone just before the lease named it is a miss.
    if (r && r->layer && env.fs.lease && !env.fs.lease->add(r->layer->digest)) r.reset();
    if (!r && env.imports) {
      r = env.imports->find(key, ok);
      if (r) env.cache.put(key, *r);
    }
    if (r && env.log) env.log->note(env.stage, key, parent, *r);
    return r;
  }
  std::optional<CacheRecord> lookup(const oci::Digest& key) { return lookup(key, st.cache_key); }

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
    // The config as docker writes it (invalid UTF-8 from the Dockerfile → U+FFFD), in memory
    // too, so that the next steps see what a cache hit would give them.
    st.config = with_valid_utf8(std::move(st.config));
    r.config_json = st.config.dump();
    if (layer) {
      r.layer = layer->descriptor;
      r.diff_id = layer->diff_id;
    }
    r.created = static_cast<std::int64_t>(std::time(nullptr));
    env.cache.put(key, r);
    if (env.log) env.log->note(env.stage, key, st.cache_key, r);
    st.cache_key = key.str();
  }

  StepResult fs_result(const FsStepResult& r) {
    return StepResult{.layer_bytes = static_cast<std::uint64_t>(r.layer.descriptor.size),
                      .frames = r.layer.frames,
                      .frames_reused = r.layer.frames_reused};
  }

  StepResult operator()(const ConfigOp& op) {
    // A step without history has its own key: records made when ONBUILD wrote one differ.
    oci::Digest key =
        BuildCache::key(st.cache_key, (op.history ? "config\n" : "config no-history\n") + step.cache_inputs + env.key_inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    op.apply(st.config);
    if (op.history) add_history(st.config, step, env.created, true);
    remember(key, std::nullopt);
    return {};
  }

  StepResult operator()(const WorkdirOp& op) {
    // v2: keys made before workdir_owner could name directories owned uid:0 for "USER 1001".
    oci::Digest key = BuildCache::key(st.cache_key, "workdir v2\n" + step.cache_inputs + env.key_inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    std::string user = config_string(st.config, "User");
    std::string path = join_image_path(config_string(st.config, "WorkingDir"), op.path);
    // Streamed (layer_tree.h): the directories exist on disk only once a later step needs them.
    FsStepResult r = run_streamed_step(env.fs, st.stack, [&](LayerTree& tree, const fs::path& view) {
      overlay::ExecUser u = workdir_owner(user, view);
      tree.mkdir_owned(path, u.uid, u.gid);
    }, env.fixed_now);
    cfg(st.config)["WorkingDir"] = path;
    add_layer(st, r.layer);
    ExecStep h = step;
    h.created_by = "WORKDIR " + path;
    add_history(st.config, h, env.created, false);
    remember(key, r.layer);
    return fs_result(r);
  }

  // COPY/ADD streams its layer from the sources (no mount, no snapshot: layer_tree.h); only
  // extracting a local archive still writes into a mounted upper.
  FsStepResult run_copy(CopyStep& copy, const LayerStack& parent) {
    if (copy.extracts_archives())
      return run_fs_step(env.fs, parent, [&](const fs::path& merged) { copy.write(merged); }, {}, env.fixed_now);
    return run_streamed_step(env.fs, parent, [&](LayerTree& tree, const fs::path& view) { copy.write(tree, view); },
                             env.fixed_now);
  }

  // `from_context`: the sources are build-context files, whose hashes are remembered by stat.
  StepResult copy_from_root(const CopyOp& op, int src_fd, bool keep_owner, bool from_context = false) {
    std::string dest = join_image_path(config_string(st.config, "WorkingDir"), op.dest);
    // The trailing "/" (or a final ".") says "into this directory": keep it through cleaning.
    if (dest_names_directory(op.dest) && dest.back() != '/') dest += '/';
    std::optional<registry::CurlHttp> http;
    if (!op.urls.empty()) http.emplace();
    CopyStep copy(op, dest, src_fd,
                  CopyStepOptions{.keep_owner = keep_owner,
                                  .excluded = op.from == CopyOp::From::Context ? env.context_excluded : nullptr,
                                  .fetch = UrlFetchOptions{.tls_verify = env.options.tls_verify},
                                  .http = http ? &*http : nullptr,
                                  .hashes = from_context ? env.fs.content_hashes : nullptr});
    if (op.link) return copy_link(copy);
    // The key: what the sources hold (content, modes, links — not mtimes) and the instruction.
    std::string inputs = "copy\n" + step.cache_inputs + "\nchown=" + op.chown + "\n" + copy.key_inputs();
    oci::Digest key = BuildCache::key(st.cache_key, inputs + env.key_inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    copy.fetch();
    FsStepResult r = run_copy(copy, st.stack);
    add_layer(st, r.layer);
    add_history(st.config, step, env.created, false);
    remember(key, r.layer);
    return fs_result(r);
  }

  // COPY --link (BuildKit's copy into scratch, merged onto the image): the layer is written
  // into an empty tree and keyed by what it holds alone — sources, destination, the owner
  // --chown resolves to — never by the layers below, so any base reuses it.
  StepResult copy_link(CopyStep& copy) {
    const CopyOp& op = std::get<CopyOp>(step.op);
    if (!op.chown.empty()) {
      // Names are looked up in the image the layer lands on (an empty tree knows none).
      if (CopyStep::owner_is_numeric(op.chown)) {
        TempDir none;
        copy.resolve_owner(none.path());
      } else {
        with_view(env.fs, st.stack, [&](const fs::path& root) { copy.resolve_owner(root); });
      }
    }
    std::string inputs = "copy-link v1\nadd=" + std::string(op.add ? "1" : "0") + "\n" + copy.key_inputs();
    // The directories the layer creates carry fixed_now when set: part of what it holds.
    std::string now = env.fixed_now ? "\nnow " + std::to_string(*env.fixed_now) : std::string();
    oci::Digest layer_key = BuildCache::key("link", inputs + env.layer_key_inputs + now);
    // On the same parent, the whole step (config and history too) is a plain cache hit.
    oci::Digest key = BuildCache::key(st.cache_key, "link\n" + step.cache_inputs + "\n" + layer_key.str() + env.key_inputs);
    if (auto hit = lookup(key)) return take(key, *hit);
    std::optional<oci::LayerResult> layer;
    StepResult res;
    if (auto hit = lookup(layer_key, "link", /*whole_step=*/false); hit && hit->layer && hit->diff_id) {
      layer = oci::LayerResult{};
      layer->descriptor = *hit->layer;
      layer->diff_id = *hit->diff_id;
      res.cached = true;
    } else {
      copy.fetch();
      FsStepResult r = run_copy(copy, LayerStack{});
      layer = r.layer;
      res = fs_result(r);
      // The record's config only names the layer, so prune keeps its stand-alone snapshot.
      CacheRecord rec{.layer = r.layer.descriptor,
                      .diff_id = r.layer.diff_id,
                      .config_json = json{{"rootfs", {{"type", "layers"}, {"diff_ids", {r.layer.diff_id.str()}}}}}.dump(),
                      .created = static_cast<std::int64_t>(std::time(nullptr))};
      env.cache.put(layer_key, rec);
      if (env.log) env.log->note(env.stage, layer_key, "link", rec);
    }
    add_layer(st, *layer);
    add_history(st.config, step, env.created, false);
    remember(key, layer);
    return res;
  }

  StepResult operator()(const CopyOp& op) {
    if (!op.inline_files.empty()) {
      TempDir files;
      for (const auto& [name, content] : op.inline_files) {
        fs::path f = files.path() / name;
        write_file_atomic(f, content, 0644, Durability::RenameOnly);
        // A here-document is made now: before the stage's first RUN, at the stage's time.
        if (env.fixed_now) {
          struct timespec times[2] = {{.tv_sec = *env.fixed_now, .tv_nsec = 0}, {.tv_sec = *env.fixed_now, .tv_nsec = 0}};
          if (::utimensat(AT_FDCWD, f.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("utimensat", f.string());
        }
      }
      UniqueFd fd = open_file(files.path(), O_RDONLY | O_DIRECTORY);
      return copy_from_root(op, fd.get(), false);
    }
    switch (op.from) {
      case CopyOp::From::Context: {
        UniqueFd fd = open_file(env.context, O_RDONLY | O_DIRECTORY);
        return copy_from_root(op, fd.get(), false, /*from_context=*/true);
      }
      case CopyOp::From::Stage: {
        const ImageState& src = env.stage_result(op.stage);
        if (op.link) {
          StepResult out;
          with_view(env.fs, src.stack, [&](const fs::path& root) {
            UniqueFd fd = open_file(root, O_RDONLY | O_DIRECTORY);
            out = copy_from_root(op, fd.get(), true);
          });
          return out;
        }
        // The step's key holds what the copied files contain, which takes the source stage's
        // files to compute. As BuildKit answers from the source's definition first, a record
        // keyed by this image and the source stage's key names the content key a build
        // computed before: a hit there needs no view of the source, so a cached COPY --from
        // reads (or, from an imported cache, downloads) none of the source stage's layers.
        oci::Digest by_source = BuildCache::key(
            st.cache_key, "copy-from-stage v1\n" + step.cache_inputs + "\nchown=" + op.chown + "\nsource " + src.cache_key +
                              env.key_inputs);
        if (auto memo = lookup(by_source, "copy-from", /*whole_step=*/false)) {
          json j = json::parse(memo->config_json, nullptr, /*allow_exceptions=*/false);
          std::optional<oci::Digest> content_key;
          if (j.is_object() && j.contains("content_key") && j["content_key"].is_string())
            content_key = oci::Digest::try_parse(j["content_key"].get<std::string>());
          if (content_key) {
            KeyedMutex::Guard claim = env.cache.claim(*content_key);
            if (auto hit = lookup(*content_key)) return take(*content_key, *hit);
          }
        }
        StepResult out;
        with_view(env.fs, src.stack, [&](const fs::path& root) {
          UniqueFd fd = open_file(root, O_RDONLY | O_DIRECTORY);
          out = copy_from_root(op, fd.get(), true);
        });
        // copy_from_root left the content key as the chain head.
        CacheRecord memo{.config_json = json{{"content_key", st.cache_key}}.dump(),
                         .created = static_cast<std::int64_t>(std::time(nullptr))};
        env.cache.put(by_source, memo);
        if (env.log) env.log->note(env.stage, by_source, "copy-from", memo);
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
    std::string wd = config_string(st.config, "WorkingDir");
    RunMounts mounts(op.mounts, env, wd.empty() ? "/" : wd);
    std::string inputs = "run\n" + step.cache_inputs + "\nnetwork=" + (none ? "none" : "host") + mounts.key_inputs();
    oci::Digest key = BuildCache::key(st.cache_key, inputs + env.key_inputs);
    KeyedMutex::Guard claim = env.cache.claim(key);
    if (auto hit = lookup(key)) return take(key, *hit);
    oci::Platform image{.architecture = config_top_string(st.config, "architecture"),
                        .os = config_top_string(st.config, "os"),
                        .variant = config_top_string(st.config, "variant")};
    if (auto why = foreign_run_problem(image, oci::Platform::host())) throw Error(ErrorKind::FailedPrecondition, *why);
    TempDir init;
    overlay::NetworkMode net = none ? overlay::NetworkMode::None : overlay::NetworkMode::Host;
    overlay::write_init_files(init.path(), overlay::InitFilesOptions{.hostname = "cbuild", .network = net});
    overlay::RunSpec spec;
    spec.argv = op.shell_form ? shell_of(st.config) : std::vector<std::string>{};
    spec.argv.insert(spec.argv.end(), op.argv.begin(), op.argv.end());
    std::string shown;
    for (const auto& a : spec.argv) shown += (shown.empty() ? "" : " ") + a;
    spec.env = op.env;
    spec.cwd = wd.empty() ? "/" : wd;
    spec.user = config_string(st.config, "User");
    spec.hostname = "cbuild";
    spec.network = net;
    spec.init_files = init.path();
    // The chroot level mounts nothing; attach() would already mount (a bind's view is an
    // overlay), and fail without CAP_SYS_ADMIN with a message that never names the level.
    if (env.fs.flat && !op.mounts.empty())
      throw Error(ErrorKind::FailedPrecondition,
                  "RUN --mount cannot be honoured with chroot isolation (it creates no namespaces and no mounts)");
    mounts.attach(spec);
    TempDir script_dir;
    if (op.script_file) {
      // Searchable by any USER, as BuildKit's mount of it is.
      fs::permissions(script_dir.path(), fs::perms(0755));
      fs::path f = script_dir.path() / op.script_file->name;
      write_file_atomic(f, op.script_file->content, 0755);
      spec.binds.push_back({.source = script_dir.path(), .target = std::string(RunOp::kScriptDir), .readonly = true});
    }
    // docker 20.10 commits the directories it created as mount points (see sandbox.h).
    spec.keep_directory_stubs = true;
    std::vector<std::string> exclude = overlay::Sandbox::stub_paths(spec);
    for (auto& p : overlay::init_file_paths()) exclude.push_back(p);
    StepRef ref{.vertex = current_vertex, .text = step.text, .line = step.line};
    FsStepResult r = run_fs_step(
        env.fs, st.stack,
        [&](const fs::path& merged) {
          spec.rootfs = merged;
          RunOutcome out = run_with_output(spec, env.progress, ref, env.fs.flat != nullptr);
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
        exclude, std::nullopt,
        [&](const std::string& w) { env.progress.warning("RUN on line " + std::to_string(step.line) + ": " + w); });
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
                 // BuildKit's empty image: WorkingDir "/" (PATH comes from apply_from_defaults).
                 {"config", {{"WorkingDir", "/"}}},
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
  c["Env"].insert(c["Env"].begin(), std::string("PATH=") + kDefaultPath);
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
    if (env.clock && env.fixed_now && std::holds_alternative<RunOp>(step.op)) {
      env.created = *env.clock;
      env.fixed_now.reset();
      env.key_inputs = env.layer_key_inputs + "\ntimes clock";
    }
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
