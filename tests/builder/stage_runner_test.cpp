// The stage runner on hand-made ExecPlans: every step kind against real overlay mounts and the
// sandbox, the build cache, failures — and the result compared with docker build's.
#include "builder/steps/stage_runner.h"

#include <doctest/doctest.h>

#include <atomic>
#include <fstream>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "overlay/snapshot_store.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/blob_map.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::builder;
using nlohmann::json;

namespace {

struct Harness {
  TempDir root, ctx;
  test::BlobMap store;
  overlay::SnapshotStore snaps{root.path()};
  FsContext fsc{.store = store, .snapshots = snaps, .layer_options = {}};
  BuildCache cache{root.path()};
  NullProgress progress;
  BuildOptions options;
  std::atomic<int> vertex{0};
  ImageState base;

  Harness() {
    // The busybox base as a one-layer image, the same tree docker gets in differential tests.
    TempDir tree;
    test::make_busybox_rootfs(tree.path() / "rootfs");
    oci::LayerResult l = oci::write_layer(tree.path() / "rootfs", store);
    base.config = scratch_config("");
    base.config["rootfs"]["diff_ids"].push_back(l.diff_id.str());
    base.config["history"].push_back({{"created_by", "cbuild test busybox rootfs"}});
    apply_from_defaults(base.config);
    base.stack = {{l.descriptor}, {l.diff_id}};
    base.cache_key = "base:" + l.descriptor.digest.str();
  }

  StageEnv env(Progress* p = nullptr) {
    return StageEnv{.fs = fsc,
                    .cache = cache,
                    .progress = p ? *p : progress,
                    .options = options,
                    .context = ctx.path(),
                    .context_excluded = nullptr,
                    .dockerfile = "Dockerfile",
                    .stage_result = nullptr,
                    .image = nullptr,
                    .next_vertex = [this] { return ++vertex; },
                    .created = 0};
  }

  ImageState run(const ExecStage& stage) {
    StageEnv e = env();
    return run_stage(stage, base, e);
  }

  // The image's files, flattened from its layer blobs.
  fs::path flatten(const ImageState& st, const fs::path& where) {
    std::vector<fs::path> files;
    fs::create_directories(where.parent_path());
    int i = 0;
    for (const auto& d : st.stack.layers) {
      fs::path f = where.parent_path() / ("layer" + std::to_string(i++));
      write_file_atomic(f, read_all(*store.open(d.digest)));
      files.push_back(f);
    }
    test::flatten_layers(files, where);
    return where;
  }
};

ExecStep config_step(std::string text, std::function<void(ConfigDoc&)> f) {
  return ExecStep{.op = ConfigOp{std::move(f)}, .text = text, .line = 2, .created_by = text, .cache_inputs = text};
}

ExecStage sample_stage() {
  ExecStage s;
  s.steps.push_back(config_step("ENV A=1", [](ConfigDoc& c) { c["config"]["Env"].push_back("A=1"); }));
  s.steps.push_back(ExecStep{.op = WorkdirOp{"/app"}, .text = "WORKDIR /app", .line = 3, .created_by = "WORKDIR /app",
                             .cache_inputs = "WORKDIR /app"});
  s.steps.push_back(ExecStep{.op = CopyOp{.sources = {"a.txt", "sub"}, .dest = "/app/"},
                             .text = "COPY a.txt sub /app/",
                             .line = 4,
                             .created_by = "COPY a.txt sub /app/ # buildkit",
                             .cache_inputs = "COPY a.txt sub /app/"});
  s.steps.push_back(ExecStep{.op = CopyOp{.sources = {"a.txt"}, .dest = "/tmp/"},
                             .text = "COPY a.txt /tmp/",
                             .line = 5,
                             .created_by = "COPY a.txt /tmp/ # buildkit",
                             .cache_inputs = "COPY a.txt /tmp/"});
  std::string cmd = "echo hi > /app/hi && rm /etc/group && echo $A > /app/env && (echo 1.2.3.4 x >> /etc/hosts || true)";
  s.steps.push_back(ExecStep{.op = RunOp{.argv = {"/bin/sh", "-c", cmd}, .env = {"PATH=/usr/bin:/bin", "A=1"}},
                             .text = "RUN " + cmd,
                             .line = 6,
                             .created_by = "RUN /bin/sh -c " + cmd + " # buildkit",
                             .cache_inputs = "RUN " + cmd});
  s.steps.push_back(config_step("USER nobody", [](ConfigDoc& c) { c["config"]["User"] = "nobody"; }));
  return s;
}

void write_context(const fs::path& ctx) {
  std::ofstream(ctx / "a.txt") << "hello\n";
  fs::create_directories(ctx / "sub");
  std::ofstream(ctx / "sub/b") << "x\n";
}

}  // namespace

TEST_CASE("run_stage: config, WORKDIR, COPY and RUN steps build the image docker builds") {
  REQUIRE_ROOT();
  Harness h;
  write_context(h.ctx.path());
  ImageState out = h.run(sample_stage());
  REQUIRE(out.stack.layers.size() == 5);  // base + WORKDIR + 2×COPY + RUN
  CHECK(out.config["config"]["WorkingDir"] == "/app");
  CHECK(out.config["config"]["User"] == "nobody");
  CHECK(out.config["config"]["Env"] == json::array({"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1"}));
  REQUIRE(out.config["history"].size() == 7);
  CHECK(out.config["history"][1]["empty_layer"] == true);
  CHECK_FALSE(out.config["history"][4].contains("empty_layer"));
  CHECK(out.config["rootfs"]["diff_ids"].size() == 5);

  TempDir work;
  fs::path mine = h.flatten(out, work.path() / "mine/rootfs");
  CHECK(test::read_text(mine / "app/hi") == "hi\n");
  CHECK(test::read_text(mine / "app/env") == "1\n");
  CHECK(test::read_text(mine / "app/b") == "x\n");
  CHECK_FALSE(fs::exists(mine / "etc/group"));
  CHECK_FALSE(fs::exists(mine / "etc/hosts"));  // init layer: never committed
  CHECK_FALSE(test::has_mounts_under(h.root.path()));

  SUBCASE("the same as docker build") {
    test::DockerPeer* docker = test::DockerPeer::get();
    if (!docker) return;
    std::ofstream(h.ctx.path() / "Dockerfile")
        << "FROM " << docker->base() << "\nENV A=1\nWORKDIR /app\nCOPY a.txt sub /app/\nCOPY a.txt /tmp/\n"
        << "RUN echo hi > /app/hi && rm /etc/group && echo $A > /app/env && (echo 1.2.3.4 x >> /etc/hosts || true)\nUSER nobody\n";
    auto b = docker->build(h.ctx.path(), h.ctx.path() / "Dockerfile", work.path() / "docker");
    REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
    std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
    CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
    CHECK(b.config["config"]["Env"] == out.config["config"]["Env"]);
    CHECK(b.config["config"]["WorkingDir"] == out.config["config"]["WorkingDir"]);
    CHECK(b.config["config"]["User"] == out.config["config"]["User"]);
    CHECK(b.config["history"].size() == out.config["history"].size());
  }
}

TEST_CASE("run_stage: a warm rebuild is all cache hits with the same result; a changed file re-runs from its COPY") {
  REQUIRE_ROOT();
  Harness h;
  write_context(h.ctx.path());
  ImageState first = h.run(sample_stage());
  struct Count final : NullProgress {
    int cached = 0, ran = 0;
    void step_done(const StepRef&, const StepResult& r) override { (r.cached ? cached : ran)++; }
  } count;
  StageEnv e = h.env(&count);
  ImageState again = run_stage(sample_stage(), h.base, e);
  CHECK(count.cached == 6);
  CHECK(count.ran == 0);
  CHECK(again.config == first.config);
  CHECK(again.stack.layers == first.stack.layers);

  std::ofstream(h.ctx.path() / "sub/b") << "changed\n";
  count.cached = count.ran = 0;
  ImageState changed = run_stage(sample_stage(), h.base, e);
  CHECK(count.cached == 2);  // ENV, WORKDIR
  CHECK(count.ran == 4);
  CHECK(changed.stack.layers[1] == first.stack.layers[1]);
  CHECK(changed.stack.layers[2] != first.stack.layers[2]);

  h.options.no_cache = true;
  count.cached = count.ran = 0;
  run_stage(sample_stage(), h.base, e);
  CHECK(count.cached == 0);
}

TEST_CASE("run_stage: failures name the Dockerfile line, keep the output tail, and leave nothing behind") {
  REQUIRE_ROOT();
  Harness h;
  write_context(h.ctx.path());
  ExecStage s;
  s.steps.push_back(ExecStep{.op = RunOp{.argv = {"/bin/sh", "-c", "echo before; exit 7"}},
                             .text = "RUN echo before; exit 7",
                             .line = 9,
                             .created_by = "x",
                             .cache_inputs = "x"});
  std::size_t blobs = h.store.size();
  try {
    h.run(s);
    FAIL("expected an error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("Dockerfile:9: RUN echo before; exit 7") == 0);
    CHECK(m.find("exit code: 7") != std::string::npos);
    CHECK(m.find("> before") != std::string::npos);
  }
  CHECK(h.store.size() == blobs);
  CHECK_FALSE(test::has_mounts_under(h.root.path()));

  ExecStage missing;
  missing.steps.push_back(ExecStep{.op = CopyOp{.sources = {"nope.txt"}, .dest = "/"},
                                   .text = "COPY nope.txt /",
                                   .line = 3,
                                   .created_by = "x",
                                   .cache_inputs = "y"});
  try {
    h.run(missing);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::NotFound);
    CHECK(std::string(e.what()).find("Dockerfile:3: COPY nope.txt /: source \"nope.txt\" not found") == 0);
  }
}
