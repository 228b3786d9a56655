// TTY renderer: finished steps scroll up as "=> [2/4] RUN make   1.2s" (or "CACHED"); the
// steps still running stay on the bottom lines with live timings, redrawn by a ticker thread.
// RUN output is printed above them, dimmed, so a failing command's last lines are visible.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "cli/progress.h"

namespace cbuild::cli {

namespace {

using Clock = std::chrono::steady_clock;

class TtyProgress final : public builder::Progress {
 public:
  explicit TtyProgress(std::FILE* out) : out_(out), start_(Clock::now()) {
    ticker_ = std::thread([this] { tick(); });
  }
  ~TtyProgress() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    ticker_.join();
    std::lock_guard lock(mu_);
    clear_live();
    std::fflush(out_);
  }

  void step_started(const builder::StepRef& s) override {
    std::lock_guard lock(mu_);
    running_[s.vertex] = {title(s), Clock::now()};
    redraw();
  }
  void step_output(const builder::StepRef& s, std::string_view line) override {
    std::lock_guard lock(mu_);
    clear_live();
    std::fprintf(out_, "\033[2m#%d %.*s\033[0m\n", s.vertex, static_cast<int>(line.size()), line.data());
    draw_live();
  }
  void step_done(const builder::StepRef& s, const builder::StepResult& r) override {
    std::lock_guard lock(mu_);
    clear_live();
    auto it = running_.find(s.vertex);
    std::string t = it != running_.end() ? it->second.title : title(s);
    if (it != running_.end()) running_.erase(it);
    if (r.cached)
      std::fprintf(out_, "\033[34m=> CACHED %s\033[0m\n", t.c_str());
    else if (r.frames > 0)
      std::fprintf(out_, "\033[34m=> %s  %.1fs  (%llu/%llu frames reused)\033[0m\n", t.c_str(), r.seconds,
                   static_cast<unsigned long long>(r.frames_reused), static_cast<unsigned long long>(r.frames));
    else
      std::fprintf(out_, "\033[34m=> %s  %.1fs\033[0m\n", t.c_str(), r.seconds);
    draw_live();
  }
  void step_failed(const builder::StepRef& s, std::string_view message) override {
    std::lock_guard lock(mu_);
    clear_live();
    running_.erase(s.vertex);
    std::fprintf(out_, "\033[31m=> ERROR %s: %.*s\033[0m\n", title(s).c_str(), static_cast<int>(message.size()),
                 message.data());
    draw_live();
  }
  void step_cancelled(const builder::StepRef& s) override {
    std::lock_guard lock(mu_);
    clear_live();
    auto it = running_.find(s.vertex);
    std::string t = it != running_.end() ? it->second.title : title(s);
    if (it != running_.end()) running_.erase(it);
    std::fprintf(out_, "\033[33m=> CANCELED %s\033[0m\n", t.c_str());
    draw_live();
  }
  void note(std::string_view message) override {
    std::lock_guard lock(mu_);
    clear_live();
    std::fprintf(out_, "%.*s\n", static_cast<int>(message.size()), message.data());
    draw_live();
  }
  void warning(std::string_view message) override {
    std::lock_guard lock(mu_);
    clear_live();
    std::fprintf(out_, "\033[33mWARNING: %.*s\033[0m\n", static_cast<int>(message.size()), message.data());
    draw_live();
  }
  void finished(std::string_view digest, std::string_view id, double seconds) override {
    std::lock_guard lock(mu_);
    clear_live();
    std::fprintf(out_, "\033[34m=> writing image %.*s (manifest %.*s)  %.1fs\033[0m\n", static_cast<int>(id.size()),
                 id.data(), static_cast<int>(digest.size()), digest.data(), seconds);
    draw_live();
  }

 private:
  struct Running {
    std::string title;
    Clock::time_point start;
  };

  static std::string title(const builder::StepRef& s) {
    if (s.count > 0)
      return "[" + (s.stage.empty() ? std::string() : s.stage + " ") + std::to_string(s.index) + "/" +
             std::to_string(s.count) + "] " + s.text;
    return "[" + (s.stage.empty() ? std::string("internal") : s.stage) + "] " + s.text;
  }

  // Erases the live lines drawn last time (cursor is left at their start).
  void clear_live() {
    for (int i = 0; i < live_lines_; ++i) std::fputs("\033[1A\033[2K", out_);
    live_lines_ = 0;
  }
  void draw_live() {
    auto now = Clock::now();
    double total = std::chrono::duration<double>(now - start_).count();
    std::fprintf(out_, "[+] Building %.1fs\n", total);
    live_lines_ = 1;
    for (auto& [v, r] : running_) {
      double sec = std::chrono::duration<double>(now - r.start).count();
      std::string t = r.title.size() > 100 ? r.title.substr(0, 97) + "..." : r.title;
      std::fprintf(out_, " => %s  %.1fs\n", t.c_str(), sec);
      ++live_lines_;
    }
    std::fflush(out_);
  }
  void redraw() {
    clear_live();
    draw_live();
  }
  void tick() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (!stop_ && !running_.empty()) redraw();
    }
  }

  std::FILE* out_;
  Clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int live_lines_ = 0;
  std::map<int, Running> running_;
  std::thread ticker_;
};

}  // namespace

std::unique_ptr<builder::Progress> make_tty_progress(std::FILE* out) { return std::make_unique<TtyProgress>(out); }

}  // namespace cbuild::cli
