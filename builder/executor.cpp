#include "builder/executor.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <set>

#include "builder/base_image.h"
#include "builder/cache/cache.h"
#include "builder/cache/cache_export.h"
#include "builder/cache/cache_import.h"
#include "builder/context/context.h"
#include "builder/context/dockerignore.h"
#include "builder/export/layer_uploads.h"
#include "builder/cache/content_hashes.h"
#include "builder/cache/frame_cache.h"
#include "builder/steps/fs_step.h"
#include "builder/export/image_writer.h"
#include "builder/export/outputs.h"
#include "builder/plan/plan_adapter.h"
#include "builder/plan/planner.h"
#include "builder/plan/stage_graph.h"
#include "builder/steps/stage_runner.h"
#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "oci/base/keyed_mutex.h"
#include "oci/compression.h"
#include "oci/diff_id.h"
#include "oci/image_config.h"
#include "oci/layout_store.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "overlay/applier.h"
#include "overlay/snapshot_store.h"
#include "registry-client/blob_origins.h"
#include "registry-client/connect.h"
#include "registry-client/origin_fetcher.h"
#include "oci/base/parallel.h"
#include "registry-client/reference.h"

namespace cbuild::builder {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_stdin() {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read", "stdin");
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Keys only Docker's image config format knows; an OCI image drops them at the end (they
// still steer the build: SHELL shapes later RUN/CMD, ONBUILD triggers are recorded). Returns a
// warning for each one that had a value, worded as buildah words its own, since the image
// loses it (whether this Dockerfile or its base set it).
std::vector<std::string> strip_docker_only(ConfigDoc& c) {
  std::vector<std::string> lost;
  if (!c.contains("config") || !c["config"].is_object()) return lost;
  json& cc = c["config"];
  const std::pair<const char*, const char*> keys[] = {{"Healthcheck", "HEALTHCHECK"}, {"OnBuild", "ONBUILD"}, {"Shell", "SHELL"}};
  for (const auto& [key, instruction] : keys) {
    auto it = cc.find(key);
    if (it == cc.end()) continue;
    bool set = !it->is_null() && !((it->is_array() || it->is_object()) && it->empty());
    if (set)
      lost.push_back(std::string(instruction) + " is not supported for OCI image format and will be ignored; " +
                     "use --format docker to keep it");
    cc.erase(it);
  }
  return lost;
}

// The stages of mode=min: the final image's stage and the stages it is built FROM, not the
// stages it only copies from (BuildKit's min).
std::set<int> final_image_stages(const ExecPlan& ep, int target) {
  std::set<int> out;
  for (int i = target; i >= 0;) {
    out.insert(i);
    const ExecStage& s = ep.stages.at(static_cast<std::size_t>(i));
    i = s.base == ExecStage::Base::Stage ? s.base_stage : -1;
  }
  return out;
}

// The OnBuild triggers of an image config (docker format); none when it has none.
std::vector<std::string> onbuild_triggers(const ConfigDoc& c, const std::string& image) {
  std::vector<std::string> out;
  if (!c.contains("config") || !c["config"].is_object() || !c["config"].contains("OnBuild")) return out;
  const json& ob = c["config"]["OnBuild"];
  if (ob.is_null()) return out;
  if (!ob.is_array()) throw Error(ErrorKind::InvalidArgument, "image " + quote(image) + ": config.OnBuild is not an array of strings");
  for (const auto& t : ob) {
    if (!t.is_string()) throw Error(ErrorKind::InvalidArgument, "image " + quote(image) + ": config.OnBuild is not an array of strings");
    out.push_back(t.get<std::string>());
  }
  return out;
}

// The key that makes "busybox" and "docker.io/library/busybox:latest" one image; a reference
// that does not parse is kept as written (loading it reports the error).
std::string normalized_or_as_is(const std::string& ref) {
  try {
    return registry::Reference::parse(ref).str();
  } catch (const Error&) {
    return ref;
  }
}

}  // namespace

BuildResult build(const BuildOptions& o, Progress& progress) {
  auto t0 = std::chrono::steady_clock::now();
  // Every -t, --output and --push problem fails here, before any work (and any store change).
  OutputPlan outputs = plan_outputs(o);

  // The context: a directory, or a tar on stdin unpacked into a temporary one.
  // In an existing store, the unpacked context goes to the build's scratch there (see below),
  // so a killed build's copy is reclaimed too; a store made by this build comes later.
  std::optional<ProcessScratch> early_scratch;
  std::error_code no_store;
  if (o.context == "-" && fs::is_directory(fs::path(o.root) / "tmp", no_store) && fs::exists(fs::path(o.root) / "oci-layout", no_store))
    early_scratch.emplace(fs::path(o.root) / "tmp");
  std::optional<TempDir> stdin_context;
  fs::path context = o.context;
  if (o.context == "-") {
    if (o.dockerfile == "-") throw Error(ErrorKind::InvalidArgument, "the context and the Dockerfile cannot both come from stdin");
    stdin_context.emplace();
    oci::TarReader reader(std::make_unique<oci::FdSource>(UniqueFd(::dup(0)), "stdin"), "build context on stdin");
    // No placeholders: COPY from the context does not read them (copy_files.h plan_copy).
    overlay::apply_layer(reader, stdin_context->path(),
                         overlay::ApplyOptions{.mode = overlay::ApplyMode::Flatten, .placeholders = false});
    context = stdin_context->path();
  } else if (!fs::is_directory(context)) {
    throw Error(ErrorKind::NotFound, "build context " + quote(o.context) + " is not a directory");
  }

  std::string dockerfile_text, dockerfile_name;
  fs::path dockerfile_path;
  if (o.dockerfile == "-") {
    dockerfile_text = read_stdin();
    dockerfile_name = "Dockerfile";
  } else {
    dockerfile_path = o.dockerfile.empty() ? context / "Dockerfile" : fs::path(o.dockerfile);
    auto text = read_file_if_exists(dockerfile_path, 64u << 20);
    if (!text) throw Error(ErrorKind::NotFound, "cannot read the Dockerfile " + quote(dockerfile_path.string()) + ": no such file");
    dockerfile_text = std::move(*text);
    dockerfile_name = o.dockerfile.empty() ? "Dockerfile" : o.dockerfile;
  }

  std::unique_ptr<oci::LayoutStore> store = oci::LayoutStore::open(o.root);
  // Layers a lazy base pull or a pushed --cache-from hit left in a registry come in when read.
  store->set_blob_fetcher(registry::origin_fetcher(*store, o.tls_verify, [&progress](const std::string& line) { progress.note(line); }));
  // The build's mount points and temp dirs live in the store, where the next command to open
  // it reclaims them should this process be killed.
  ProcessScratch scratch(store->root() / "tmp");
  std::shared_ptr<oci::Lease> lease = store->acquire_lease("build");
  store->set_default_lease(lease);
  overlay::SnapshotStore snapshots(o.root);
  oci::DiffIdRecords diff_ids(o.root);
  BuildCache cache(o.root);
  oci::Codec codec = o.compression == Compression::Zstd           ? oci::Codec::Zstd
                     : o.compression == Compression::Uncompressed ? oci::Codec::None
                                                                  : oci::Codec::Gzip;
  int level = oci::resolve_level(codec, o.compression_level);
  StoreFrameCache frames(o.root, oci::encoder_id(codec, level));
  oci::LayerWriterOptions lo{.codec = codec, .level = level};
  // SOURCE_DATE_EPOCH clamps every layer time; stage_time (below) says what history and the
  // directories a step creates carry without it.
  if (o.source_date_epoch) lo.clamp_mtime = o.source_date_epoch;
  ContentHashes hashes(ContentHashes::store_file(o.root));
  // Saved however the build ends: the hashes taken so far are right either way.
  struct SaveHashes {
    ContentHashes& h;
    ~SaveHashes() { h.save(); }
  } save_hashes{hashes};
  LayerMemo memo(o.root);
  registry::BlobOrigins blob_origins(o.root);
  // --cache-from sources are read once, before any step; --cache-to takes what the steps note.
  auto location = [](const CacheSpec& c, const char* flag) {
    return CacheLocation{.kind = c.type == CacheSpec::Type::Local ? CacheLocation::Kind::Directory
                                                                  : CacheLocation::Kind::Registry,
                         .where = c.type == CacheSpec::Type::Local ? c.dir : c.ref,
                         .name = std::string(flag) + " " + c.text};
  };
  auto note = [&progress](const std::string& line) { progress.note(line); };
  std::optional<CacheImports> imports;
  if (!o.cache_from.empty() && !o.no_cache) {
    std::vector<CacheLocation> from;
    for (const auto& c : o.cache_from) from.push_back(location(c, "--cache-from"));
    imports.emplace(from, *store, &diff_ids, lease.get(), o.tls_verify,
                    [&progress](const std::string& line) { progress.warning(line); }, &blob_origins, o.platform);
  }
  // Steps read layers through this store, so a hit's layer is downloaded only when read.
  std::optional<ImportingStore> importing;
  if (imports && !imports->empty()) importing.emplace(*store, *imports);
  oci::Store& build_store = importing ? static_cast<oci::Store&>(*importing) : *store;
  CacheLog cache_log;
  FsContext fsc{.store = build_store,
                .snapshots = snapshots,
                .layer_options = lo,
                .frame_cache = &frames,
                .content_hashes = &hashes,
                .layer_memo = &memo,
                .lease = lease.get(),
                .diff_ids = &diff_ids};
  std::optional<FlatRoots> flat_roots;
  if (o.isolation == overlay::Isolation::Chroot) {
    flat_roots.emplace(build_store, snapshots, &diff_ids);
    fsc.flat = &*flat_roots;
  }

  // Base images, loaded (and pulled) once per build even when parallel stages name the same
  // one. A failure is kept too and rethrown when the stage that names the image runs, so the
  // error shows on its FROM line without a second pull.
  struct LoadedImage {
    std::optional<ImageState> state;
    std::exception_ptr error;
  };
  KeyedMutex image_loading;
  std::mutex images_mu;
  std::map<std::string, LoadedImage> images;
  auto image_once = [&](const std::string& ref, const std::string& platform) -> ImageState {
    std::string key = platform + "\n" + normalized_or_as_is(ref);
    KeyedMutex::Guard loading = image_loading.lock(key);
    {
      std::lock_guard lock(images_mu);
      if (auto it = images.find(key); it != images.end()) {
        if (it->second.error) std::rethrow_exception(it->second.error);
        return *it->second.state;
      }
    }
    LoadedImage l;
    try {
      l.state = load_image(*store, ref, platform, o, progress, lease.get(), &diff_ids, &blob_origins);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Cancelled || cancel_requested()) throw;
      l.error = std::current_exception();
    }
    std::lock_guard lock(images_mu);
    const LoadedImage& got = images.emplace(key, std::move(l)).first->second;
    if (got.error) std::rethrow_exception(got.error);
    return *got.state;
  };

  PlanOptions po;
  po.build_args = o.build_args;
  po.target = o.target;
  po.target_platform = o.platform;
  // Images the planner could not take the Env of from the store (absent, or --pull asks for
  // the registry's): they are pulled and the Dockerfile planned again (below).
  std::set<std::string> unresolved;
  bool pulled = false;
  po.image_env = [&](const std::string& image, const std::string& platform) -> std::optional<EnvList> {
    std::optional<ImageState> st;
    if (!o.pull || pulled) {
      try {
        st = load_local_image(*store, image, platform);
      } catch (const Error&) {
        return std::nullopt;  // reported when the stage runs
      }
    }
    if (!st) {
      unresolved.insert(image);
      return std::nullopt;
    }
    EnvList env;
    if (st->config.contains("config") && st->config["config"].contains("Env") && st->config["config"]["Env"].is_array())
      for (const auto& e : st->config["config"]["Env"]) {
        if (!e.is_string()) continue;
        std::string s = e.get<std::string>();
        auto eq = s.find('=');
        env.emplace_back(s.substr(0, eq), eq == std::string::npos ? "" : s.substr(eq + 1));
      }
    return env;
  };
  po.image_onbuild = [&](const std::string& image, const std::string& platform) -> std::optional<std::vector<std::string>> {
    std::optional<ImageState> st;
    try {
      st = load_local_image(*store, image, platform);
    } catch (const Error&) {
      return std::nullopt;  // reported when the stage runs
    }
    if (!st) return std::nullopt;
    return onbuild_triggers(st->config, image);
  };
  Plan plan = plan_dockerfile(dockerfile_text, dockerfile_name, po);
  // Words expand against the base image's Env (`ENV FOO` in the base, `RUN echo $FOO` here),
  // and the step cache keys hold it: a base the build pulls must be in the store before the
  // plan is final, or the first build would expand against nothing and key differently from
  // every later one. Only the stages the target needs are pulled, as BuildKit resolves them.
  for (int i : plan.order) {
    const Stage& s = plan.stages.at(static_cast<std::size_t>(i));
    if (s.base != Stage::Base::Image || !unresolved.count(s.base_image)) continue;
    check_cancelled();
    try {
      image_once(s.base_image, s.platform.empty() ? o.platform : s.platform);  // for the pull; the state is memoized
      pulled = true;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::Cancelled || cancel_requested()) throw;
      // Kept by image_once: the stage reports it on its FROM line.
    }
  }
  if (pulled) {
    unresolved.clear();
    plan = plan_dockerfile(dockerfile_text, dockerfile_name, po);
  }
  for (const auto& w : plan.warnings) progress.warning(w.to_string());
  ExecPlan ep = to_exec_plan(plan);

  DockerIgnore ignore = DockerIgnore::load(context, dockerfile_path.empty() ? context / "Dockerfile" : dockerfile_path);
  std::atomic<int> vertex{0};
  const std::int64_t clock = static_cast<std::int64_t>(std::time(nullptr));
  std::int64_t created = o.source_date_epoch.value_or(clock);
  // Every step key also holds how the layers are encoded, so a cache hit never hands back a
  // layer in another compression (or with other clamped times) than this build asks for.
  std::string layer_key_inputs =
      "\nlayers " + (codec == oci::Codec::None ? std::string("none") : oci::encoder_id(codec, level)) +
      (o.source_date_epoch ? "\nclamp " + std::to_string(*o.source_date_epoch) : std::string());
  // The time a stage starts with (stage_runner.h StageEnv::created), and what the step keys
  // say about it: a record made under one rule is never taken under another (a step without
  // RUN before it must not take the clock a build of another Dockerfile gave it).
  auto stage_time = [&](const ImageState& base) -> std::pair<std::int64_t, std::string> {
    if (o.source_date_epoch) return {*o.source_date_epoch, "source-date-epoch"};
    std::int64_t t = 0;
    if (base.config.contains("created") && base.config["created"].is_string())
      t = std::max<std::int64_t>(0, oci::parse_rfc3339(base.config["created"].get<std::string>()).value_or(0));
    return {t, "inherited"};
  };

  // Stage results, written once by the stage's own thread before any stage that needs it
  // starts (run_graph orders that), so readers need no lock.
  std::vector<std::optional<ImageState>> done(ep.stages.size());
  auto finished_stage = [&](int i) -> const ImageState& {
    const auto& r = done.at(static_cast<std::size_t>(i));
    if (!r) throw Error(ErrorKind::Internal, "stage " + std::to_string(i) + " is used before it has run");
    return *r;
  };

  // --push: the final image's layers go to the first destination while they are written.
  const std::set<int> final_stages = final_image_stages(ep, plan.target);
  std::optional<LayerUploads> uploads;
  if (!outputs.push.empty()) {
    registry::Reference dest = registry::Reference::parse(outputs.push.front());
    uploads.emplace(registry::connect(dest, o.tls_verify), dest, *store);
  }

  const std::function<bool(const std::string&)> context_excluded = context_exclusion(context, ignore);
  auto stage_env_on = [&](FsContext& fs) {
    return StageEnv{.fs = fs,
                    .cache = cache,
                    .progress = progress,
                    .options = o,
                    .context = context,
                    .context_excluded = context_excluded,
                    .dockerfile = dockerfile_name,
                    .stage_result = finished_stage,
                    .image = [&](const std::string& ref) { return image_once(ref, o.platform); },
                    .next_vertex = [&vertex] { return ++vertex; },
                    .created = created,
                    .imports = imports && !imports->empty() ? &*imports : nullptr,
                    .log = o.cache_to.empty() ? nullptr : &cache_log};
  };
  auto run_one = [&](int i) {
    const ExecStage& s = ep.stages.at(static_cast<std::size_t>(i));
    ImageState base;
    switch (s.base) {
      case ExecStage::Base::Scratch:
        base.config = scratch_config(s.platform.empty() ? o.platform : s.platform);
        base.cache_key = "scratch:" + base.config["os"].get<std::string>() + "/" + base.config["architecture"].get<std::string>();
        break;
      case ExecStage::Base::Stage:
        base = finished_stage(s.base_stage);
        break;
      case ExecStage::Base::Image: {
        StepRef ref{.vertex = ++vertex, .stage = s.name, .text = "FROM " + s.base_image};
        progress.step_started(ref);
        try {
          check_cancelled();
          base = image_once(s.base_image, s.platform.empty() ? o.platform : s.platform);
        } catch (const Error& e) {
          if (e.kind() == ErrorKind::Cancelled || cancel_requested()) {
            progress.step_cancelled(ref);
            throw Error(ErrorKind::Cancelled, interrupted() ? "interrupted" : "cancelled");
          }
          progress.step_failed(ref, e.what());
          const Stage& ps = plan.stages.at(static_cast<std::size_t>(i));
          throw Error(e.kind(), dockerfile_name + ":" + std::to_string(ps.range.start_line) + ": " + ps.from_original +
                                    ": " + e.what());
        }
        progress.step_done(ref, StepResult{});
        // The plan made the base's ONBUILD triggers the first steps of this stage; a base
        // that changed since it was planned must not be built on without them, or with
        // other ones.
        std::vector<std::string> triggers = onbuild_triggers(base.config, s.base_image);
        if (triggers != s.base_onbuild.value_or(std::vector<std::string>{})) {
          const Stage& ps = plan.stages.at(static_cast<std::size_t>(i));
          throw Error(ErrorKind::FailedPrecondition,
                      dockerfile_name + ":" + std::to_string(ps.range.start_line) + ": " + ps.from_original + ": image " +
                          quote(s.base_image) + " has ONBUILD triggers that " +
                          (s.base_onbuild ? "changed since the build was planned" : "were not known when the build was planned") +
                          " (the tag was moved meanwhile; building again runs the triggers it names now)");
        }
        break;
      }
    }
    // Triggers fire once, in the stage built on them (docker clears them at FROM).
    if (base.config.contains("config") && base.config["config"].is_object()) base.config["config"].erase("OnBuild");
    // A base's inline cache describes the base's build, not this one's.
    if (base.config.is_object()) base.config.erase(std::string(kInlineCacheKey));
    apply_from_defaults(base.config);
    FsContext stage_fs = fsc;
    if (uploads && final_stages.count(i)) stage_fs.layer_upload = [&uploads] { return uploads->begin(); };
    StageEnv stage_env = stage_env_on(stage_fs);
    auto [time, rule] = stage_time(base);
    stage_env.created = time;
    stage_env.fixed_now = time;
    stage_env.key_inputs = layer_key_inputs + "\ntimes " + rule;
    stage_env.layer_key_inputs = layer_key_inputs;
    stage_env.stage = i;
    if (!o.source_date_epoch) stage_env.clock = clock;
    // A stage whose steps change nothing (FROM alone) is its base made at this time (the base's
    // own string when inherited, so that its fraction of a second stays too).
    if (rule != "inherited" || !base.config.contains("created") || !base.config["created"].is_string())
      base.config["created"] = oci::rfc3339_utc(time);
    done.at(static_cast<std::size_t>(i)) = run_stage(s, std::move(base), stage_env);
  };

  // Every stage the plan needs plus whatever those name (the planner lists them all; this
  // only guards against a plan that forgot one), dependencies before dependents by preference.
  std::vector<std::vector<int>> needs(ep.stages.size());
  for (std::size_t i = 0; i < ep.stages.size(); ++i) needs[i] = stage_needs(ep.stages[i]);
  std::vector<int> order;
  std::vector<bool> listed(ep.stages.size(), false);
  std::function<void(int)> add = [&](int i) {
    if (i < 0 || static_cast<std::size_t>(i) >= ep.stages.size())
      throw Error(ErrorKind::Internal, "the plan names stage " + std::to_string(i) + ", which does not exist");
    if (listed[static_cast<std::size_t>(i)]) return;
    listed[static_cast<std::size_t>(i)] = true;
    order.push_back(i);
    for (int d : needs[static_cast<std::size_t>(i)]) add(d);
  };
  for (int i : plan.order) add(i);
  add(plan.target);
  run_graph(order, needs, o.jobs > 0 ? o.jobs : default_jobs(), run_one);
  ImageState final_state = finished_stage(plan.target);

  if (!o.labels.empty()) {
    json& labels = final_state.config["config"]["Labels"];
    if (!labels.is_object()) labels = json::object();
    for (const auto& [k, v] : o.labels) labels[k] = v;
  }
  if (!final_state.config.contains("created")) final_state.config["created"] = oci::rfc3339_utc(created);
  if (outputs.format == ImageFormat::Oci)
    for (const auto& w : strip_docker_only(final_state.config)) progress.warning(w);

  check_cancelled();  // a build stopped now must not tag or export anything
  // Built into the store only, the image's layers join it before anything names them. With
  // --push, a layer still in a registry (a --cache-from hit, a lazily pulled base) stays there
  // and the tag names it lazily: the pusher needs no bytes the target registry has or can
  // mount, and whatever reads the layer later fetches it (oci/layout_store.h). Layers nothing
  // names stay where they are unless read.
  std::vector<std::size_t> to_fetch;
  for (std::size_t i = 0; i < final_state.stack.layers.size(); ++i) {
    const oci::Descriptor& layer = final_state.stack.layers[i];
    if (!store->stat(layer.digest) && (outputs.push.empty() || blob_origins.locations(layer.digest).empty()))
      to_fetch.push_back(i);
  }
  // As many at once as a pull moves.
  run_parallel(to_fetch.size(), 4, [&](std::size_t n) {
    const std::size_t i = to_fetch[n];
    const oci::Descriptor& layer = final_state.stack.layers[i];
    build_store.open(layer.digest);
    // A lazily pulled base layer was only checked against its digest: like an eager pull, the
    // image is not written until it decompresses to the DiffID its config states.
    std::optional<oci::Digest> got = diff_ids.find(layer.digest);
    if (!got) {
      got = oci::diff_id_of_blob(*store, layer, "layer " + layer.digest.str());
      diff_ids.record(layer.digest, *got);
    }
    if (*got != final_state.stack.diff_ids.at(i))
      throw Error(ErrorKind::DataLoss, "layer " + layer.digest.str() + " decompresses to " + got->str() +
                                           ", but the image config says " + final_state.stack.diff_ids.at(i).str());
  });
  // --cache-to type=inline: added last, so no record's config holds it.
  if (std::any_of(o.cache_to.begin(), o.cache_to.end(), [](const CacheSpec& c) { return c.type == CacheSpec::Type::Inline; }))
    final_state.config[std::string(kInlineCacheKey)] =
        json::parse(make_inline_cache(cache_log.entries(&final_stages), final_state.stack.layers));
  WrittenImage w = write_image(*store, final_state, outputs.format);
  check_cancelled();
  if (uploads) uploads->finish(final_state.stack.layers, note);
  std::vector<PushedImage> pushed = export_outputs(outputs, *store, w, o, progress);
  if (!o.cache_to.empty()) {
    for (const auto& spec : o.cache_to) {
      if (spec.type == CacheSpec::Type::Inline) continue;  // written with the image
      check_cancelled();
      export_cache(location(spec, "--cache-to"), cache_log.entries(spec.max ? nullptr : &final_stages), *store,
                   build_store, o.tls_verify, note);
    }
  }

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finished(w.manifest.digest.str(), w.config.str(), seconds);
  return BuildResult{.image_id = w.config.str(),
                     .manifest_digest = w.manifest.digest.str(),
                     .pushed = std::move(pushed),
                     .wrote_stdout = outputs.writes_stdout};
}

}  // namespace cbuild::builder
