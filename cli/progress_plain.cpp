#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "cli/progress.h"

namespace cbuild::cli {

namespace {

class PlainProgress final : public builder::Progress {
 public:
  explicit PlainProgress(std::FILE* out) : out_(out), start_(std::chrono::steady_clock::now()) {}

  void step_started(const builder::StepRef& s) override {
    std::lock_guard lock(mu_);
    std::fprintf(out_, "#%d %s\n", s.vertex, title(s).c_str());
    std::fflush(out_);
  }
  void step_output(const builder::StepRef& s, std::string_view line) override {
    std::lock_guard lock(mu_);
    std::fprintf(out_, "#%d %.3f %.*s\n", s.vertex, elapsed(), static_cast<int>(line.size()), line.data());
    std::fflush(out_);
  }
  void step_done(const builder::StepRef& s, const builder::StepResult& r) override {
    std::lock_guard lock(mu_);
    if (r.cached) {
      std::fprintf(out_, "#%d CACHED\n", s.vertex);
    } else {
      if (r.frames > 0)
        std::fprintf(out_, "#%d layer %.1f MB, %llu frames: %llu reused, %llu compressed\n", s.vertex,
                     static_cast<double>(r.layer_bytes) / 1e6, static_cast<unsigned long long>(r.frames),
                     static_cast<unsigned long long>(r.frames_reused),
                     static_cast<unsigned long long>(r.frames - r.frames_reused));
      std::fprintf(out_, "#%d DONE %.1fs\n", s.vertex, r.seconds);
    }
    std::fflush(out_);
  }
  void step_failed(const builder::StepRef& s, std::string_view message) override {
    std::lock_guard lock(mu_);
    std::fprintf(out_, "#%d ERROR: %.*s\n", s.vertex, static_cast<int>(message.size()), message.data());
    std::fflush(out_);
  }
  void step_cancelled(const builder::StepRef& s) override {
    std::lock_guard lock(mu_);
    std::fprintf(out_, "#%d CANCELED\n", s.vertex);
    std::fflush(out_);
  }
  void note(std::string_view message) override {
    std::lock_guard lock(mu_);
    std::fprintf(out_, "%.*s\n", static_cast<int>(message.size()), message.data());
    std::fflush(out_);
  }
  void warning(std::string_view message) override {
    std::lock_guard lock(mu_);
    std::fprintf(out_, "WARNING: %.*s\n", static_cast<int>(message.size()), message.data());
    std::fflush(out_);
  }
  void finished(std::string_view digest, std::string_view id, double seconds) override {
    std::lock_guard lock(mu_);
    std::fprintf(out_, "writing image %.*s (manifest %.*s) done %.1fs\n", static_cast<int>(id.size()), id.data(),
                 static_cast<int>(digest.size()), digest.data(), seconds);
    std::fflush(out_);
  }

 private:
  static std::string title(const builder::StepRef& s) {
    if (s.count > 0)
      return "[" + (s.stage.empty() ? std::string() : s.stage + " ") + std::to_string(s.index) + "/" +
             std::to_string(s.count) + "] " + s.text;
    return "[" + (s.stage.empty() ? std::string("internal") : s.stage) + "] " + s.text;
  }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  std::FILE* out_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<builder::Progress> make_plain_progress(std::FILE* out) { return std::make_unique<PlainProgress>(out); }

std::unique_ptr<builder::Progress> make_progress(builder::ProgressMode mode, std::FILE* out) {
  switch (mode) {
    case builder::ProgressMode::Quiet:
      return std::make_unique<builder::NullProgress>();
    case builder::ProgressMode::Plain:
      return make_plain_progress(out);
    case builder::ProgressMode::Tty:
      return make_tty_progress(out);
    case builder::ProgressMode::Auto:
      break;
  }
  const char* term = std::getenv("TERM");
  bool tty = ::isatty(::fileno(out)) && term && std::strcmp(term, "dumb") != 0 && !std::getenv("CI");
  return tty ? make_tty_progress(out) : make_plain_progress(out);
}

}  // namespace cbuild::cli
