// `cbuild check [-f FILE] [FILE]` — validates a Dockerfile without building, like
// `docker build --check`: parse, type every instruction, plan (ARG scoping, stage DAG,
// --target). Warnings and errors go to stderr as "FILE:LINE: message"; exit 1 on error.
#include <iostream>
#include <iterator>
#include <memory>

#include "builder/plan/build_options.h"
#include "builder/dockerfile/dockerfile_error.h"
#include "builder/plan/planner.h"
#include "cli/command.h"
#include "oci/base/fs.h"

namespace cbuild::cli {
namespace {

struct CheckOptions {
  std::string file;
  std::string positional;
  std::vector<std::string> build_args;
  std::string target;
  std::string platform;
};

int run_check(const CheckOptions& o) {
  namespace b = builder;
  std::string path = !o.file.empty() ? o.file : !o.positional.empty() ? o.positional : "Dockerfile";
  // A directory means DIR/Dockerfile, as for `docker build --check DIR`.
  if (o.file.empty() && std::filesystem::is_directory(path)) path = (std::filesystem::path(path) / "Dockerfile").string();
  std::string text = path == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>())
                                 : read_file(path);
  b::PlanOptions po;
  for (const std::string& a : o.build_args)
    if (auto kv = b::parse_key_value(a, "--build-arg", true)) po.build_args[kv->first] = kv->second;
  po.target = o.target;
  po.target_platform = o.platform;
  try {
    b::Plan plan = b::plan_dockerfile(text, path == "-" ? "Dockerfile" : path, po);
    for (const auto& w : plan.warnings) std::cerr << w.to_string() << "\n";
    std::size_t steps = 0;
    for (int s : plan.order) steps += plan.stages[static_cast<std::size_t>(s)].steps.size();
    std::cout << "Check complete: " << plan.order.size() << " of " << plan.stages.size() << " stages needed, "
              << steps << " steps, " << plan.warnings.size() << " warning(s)\n";
    return 0;
  } catch (const builder::dockerfile::DockerfileError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

CommandRegistration reg{{
    .name = "check",
    .help = "Validate a Dockerfile (parse, instructions, plan) without building",
    .setup = [](CLI::App& app, GlobalOptions&) -> std::function<int()> {
      auto o = std::make_shared<CheckOptions>();
      app.add_option("-f,--file", o->file, "Dockerfile to check (- for stdin)");
      app.add_option("FILE", o->positional, "Dockerfile or context directory (default: ./Dockerfile)");
      app.add_option("--build-arg", o->build_args, "Build-time variable NAME=VALUE (repeatable)")->allow_extra_args(false);
      app.add_option("--target", o->target, "Stage to check for");
      app.add_option("--platform", o->platform, "Target platform os/arch[/variant]");
      return [o] { return run_check(*o); };
    }}};

}  // namespace
}  // namespace cbuild::cli
