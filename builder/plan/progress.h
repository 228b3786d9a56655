// Progress — the events a build reports while it runs. The executor calls these; the CLI
// renders them (cli/progress_plain.cpp: one line per event, for CI and pipes;
// cli/progress_tty.cpp: live steps with timings). Implementations must be thread-safe: steps
// of independent stages report from different threads. None of the calls may throw.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cbuild::builder {

// Identifies one step in the output: "[stage 2/5] RUN make" — `vertex` is a small number
// unique within the build, so interleaved lines of parallel stages can be told apart.
struct StepRef {
  int vertex = 0;
  std::string stage;     // stage name, or its index as text
  int index = 0;         // 1-based step number within the stage
  int count = 0;         // steps in the stage
  std::string text;      // the instruction as written ("RUN make -j2"), one line
  int line = 0;          // Dockerfile line (1-based); 0 for internal steps (e.g. "load base")
};

struct StepResult {
  double seconds = 0;
  bool cached = false;
  std::uint64_t layer_bytes = 0;      // compressed size of the step's layer, 0 if none
  std::uint64_t frames = 0;           // compressed frames in the layer
  std::uint64_t frames_reused = 0;    // frames taken from the frame cache
};

class Progress {
 public:
  virtual ~Progress() = default;
  virtual void step_started(const StepRef& step) = 0;
  // A line of a RUN's stdout/stderr (without the trailing newline).
  virtual void step_output(const StepRef& step, std::string_view line) = 0;
  virtual void step_done(const StepRef& step, const StepResult& result) = 0;
  virtual void step_failed(const StepRef& step, std::string_view message) = 0;
  // The step was stopped before it finished: Ctrl-C, or another stage of the build failed.
  // BuildKit shows "CANCELED"; by default it is reported as a failure saying so.
  virtual void step_cancelled(const StepRef& step) { step_failed(step, "cancelled"); }
  // Informational notes and warnings not tied to a step ("pulling docker.io/library/x").
  virtual void note(std::string_view message) = 0;
  virtual void warning(std::string_view message) = 0;
  // Called once at the end with the image digest (manifest) and ID (config digest).
  virtual void finished(std::string_view manifest_digest, std::string_view image_id, double seconds) = 0;
};

// Discards everything (for --quiet and for library users who do not care).
class NullProgress : public Progress {
 public:
  void step_started(const StepRef&) override {}
  void step_output(const StepRef&, std::string_view) override {}
  void step_done(const StepRef&, const StepResult&) override {}
  void step_failed(const StepRef&, std::string_view) override {}
  void step_cancelled(const StepRef&) override {}
  void note(std::string_view) override {}
  void warning(std::string_view) override {}
  void finished(std::string_view, std::string_view, double) override {}
};

}  // namespace cbuild::builder
