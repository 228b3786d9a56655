// bench_overlay — the overlay module's timed operations, driven by bench/overlay.sh and
// bench/sandbox_start.sh (which time the peers the same way and print medians and ratios).
//   bench_overlay gen DIR MIB FILES        a mixed tree (1/3 random, 2/3 text)
//   bench_overlay gen-small DIR FILES      FILES small files (100..2000 bytes) in 100 dirs
//   bench_overlay apply BLOB DIR           apply one (compressed) layer blob; prints seconds
//   bench_overlay diff DIR OUT             DIR as an upper → plain tar at OUT; prints seconds
//   bench_overlay sandbox ROOTFS N         N × Sandbox::run(/bin/true); prints each in ms
//   bench_overlay spawn N CMD…             N × fork/exec/wait of CMD; prints each in ms
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"
#include "overlay/applier.h"
#include "overlay/differ.h"
#include "overlay/sandbox.h"

namespace fs = std::filesystem;
using namespace cbuild;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void gen(const fs::path& dir, std::uint64_t mib, int files) {
  std::mt19937_64 rng(42);
  std::uint64_t per = (mib << 20) / static_cast<std::uint64_t>(files);
  std::string text;
  while (text.size() < per + 64) text += "the quick brown fox " + std::to_string(text.size() % 9973) + " jumps\n";
  for (int i = 0; i < files; ++i) {
    fs::path p = dir / ("d" + std::to_string(i % 50)) / ("f" + std::to_string(i));
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    if (i % 3 == 0) {
      std::string buf(per, '\0');
      for (auto& c : buf) c = static_cast<char>(rng());
      out << buf;
    } else {
      out.write(text.data() + (i % 64), static_cast<std::streamsize>(per));
    }
  }
}

void gen_small(const fs::path& dir, int files) {
  std::mt19937 rng(7);
  std::string text(4096, 'x');
  for (std::size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i * 7 % 26);
  for (int d = 0; d < 100; ++d) fs::create_directories(dir / ("d" + std::to_string(d)));
  for (int i = 0; i < files; ++i) {
    std::ofstream out(dir / ("d" + std::to_string(i % 100)) / ("f" + std::to_string(i)), std::ios::binary);
    out.write(text.data(), 100 + static_cast<std::streamsize>(rng() % 1900));
  }
}

// The layer pipeline hands the tar to a compressor in large chunks; a plain FileSink writes
// every header and block separately, so the bench buffers like `tar -c` (which writes 10 KiB
// records) to compare the walk, not the write pattern.
class BufferedSink : public oci::ByteSink {
 public:
  explicit BufferedSink(oci::ByteSink& out) : out_(out) {}
  void write(std::span<const std::byte> data) override {
    buf_.insert(buf_.end(), data.begin(), data.end());
    if (buf_.size() >= (1u << 20)) flush();
  }
  void finish() override {
    flush();
    out_.finish();
  }
  using ByteSink::write;

 private:
  void flush() {
    out_.write(std::span<const std::byte>(buf_.data(), buf_.size()));
    buf_.clear();
  }
  oci::ByteSink& out_;
  std::vector<std::byte> buf_;
};

double spawn_once(char** argv) {
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execvp(argv[0], argv);
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw Error(ErrorKind::Internal, std::string("peer failed: ") + argv[0]);
  return seconds_since(t0) * 1000.0;
}

}  // namespace

int main(int argc, char** argv) try {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "gen" && argc == 5) {
    gen(argv[2], std::stoull(argv[3]), std::stoi(argv[4]));
  } else if (mode == "gen-small" && argc == 4) {
    gen_small(argv[2], std::stoi(argv[3]));
  } else if (mode == "apply" && argc == 4) {
    auto t0 = Clock::now();
    oci::TarReader reader(oci::FdSource::open(argv[2]), argv[2]);
    overlay::ApplyOptions opt;
    auto stats = overlay::apply_layer(reader, argv[3], opt);
    std::printf("%.3f\n", seconds_since(t0));
    std::fprintf(stderr, "applied %llu entries, %llu bytes\n", static_cast<unsigned long long>(stats.entries),
                 static_cast<unsigned long long>(stats.bytes));
  } else if (mode == "diff" && argc == 4) {
    auto t0 = Clock::now();
    oci::FileSink file(argv[3]);
    BufferedSink sink(file);
    oci::TarWriter w(sink);
    auto n = overlay::write_diff(argv[2], w, {});
    w.finish();
    std::printf("%.3f\n", seconds_since(t0));
    std::fprintf(stderr, "diffed %llu entries\n", static_cast<unsigned long long>(n));
  } else if (mode == "sandbox" && argc == 4) {
    overlay::RunSpec spec;
    spec.rootfs = argv[2];
    spec.argv = {"/bin/true"};
    int n = std::stoi(argv[3]);
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      auto st = overlay::Sandbox::run(spec);
      if (!st.ok()) throw Error(ErrorKind::Internal, "/bin/true failed in the sandbox");
      std::printf("%.3f\n", seconds_since(t0) * 1000.0);
    }
  } else if (mode == "spawn" && argc >= 4) {
    int n = std::stoi(argv[2]);
    for (int i = 0; i < n; ++i) std::printf("%.3f\n", spawn_once(argv + 3));
  } else {
    std::fprintf(stderr, "usage: bench_overlay gen|gen-small|apply|diff|sandbox|spawn … (see bench/overlay.cpp)\n");
    return 2;
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_overlay: error: %s\n", e.what());
  return 1;
}
