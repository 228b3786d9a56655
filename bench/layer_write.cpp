// bench_layer_write — drives cbuild's layer pipeline for bench/layer_write.sh.
//
//   bench_layer_write gen DIR TOTAL_MIB FILES     deterministic mixed tree (1/3 random, 2/3 text)
//   bench_layer_write write DIR OUT CODEC [--level N] [--threads N] [--single]
//   bench_layer_write read BLOB DIGEST            decompress + verify digest + walk every entry
//
// write/read print one line "key=value …" (seconds, MB/s over the uncompressed tar, sizes, peak
// RSS in MiB). The write goes to a plain file (no fsync) so it compares with `tar | zstd > f`.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/compression.h"
#include "oci/layer_writer.h"
#include "oci/layout_store.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/verify.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double peak_rss_mib() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}


struct Rng {
  std::uint64_t x;
  std::uint64_t next() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  }
};

int gen(const std::filesystem::path& dir, std::uint64_t total_mib, int files) {
  Rng rng{0x5eed};
  // A vocabulary of 4096 pseudo-words; picks are skewed (min of two draws) like real text.
  std::vector<std::string> words;
  for (int i = 0; i < 4096; ++i) {
    std::string w;
    int len = 2 + static_cast<int>(rng.next() % 9);
    for (int k = 0; k < len; ++k) w.push_back(static_cast<char>('a' + rng.next() % 26));
    words.push_back(w);
  }
  std::uint64_t total = total_mib << 20, avg = total / static_cast<std::uint64_t>(files);
  std::string buf;
  for (int i = 0; i < files; ++i) {
    auto sub = dir / ("dir" + std::to_string(i % 37)) / ("sub" + std::to_string(i % 5));
    make_dirs(sub);
    std::uint64_t size = avg / 4 + rng.next() % (avg * 3 / 2);  // mean ≈ avg
    buf.clear();
    if (i % 3 == 0) {
      buf.resize(size);
      for (std::uint64_t k = 0; k + 8 <= size; k += 8) {
        std::uint64_t v = rng.next();
        std::memcpy(&buf[k], &v, 8);
      }
    } else {
      while (buf.size() < size) {
        std::uint64_t r = rng.next();
        std::uint64_t a = r & 4095, b = (r >> 12) & 4095;
        buf += words[std::min(a, b)];
        buf += ((r >> 24) % 12 == 0) ? '\n' : ' ';
      }
      buf.resize(size);
    }
    FileSink f(sub / ("file" + std::to_string(i) + (i % 3 ? ".txt" : ".bin")));
    f.write(buf);
    f.finish();
  }
  return 0;
}

int write_cmd(int argc, char** argv) {
  std::filesystem::path dir = argv[2], out = argv[3];
  LayerWriterOptions o;
  o.codec = parse_codec(argv[4]);
  for (int i = 5; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--level" && i + 1 < argc) o.level = std::stoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) o.threads = static_cast<unsigned>(std::stoi(argv[++i]));
    else if (a == "--single") o.framed = false;
    else throw Error(ErrorKind::InvalidArgument, "unknown option " + quote(a));
  }
  // Into a real store (as a build writes layers): its ingest hashes, writes with direct I/O and
  // fsyncs before the blob is published. The blob is then moved to OUT, outside the timing.
  std::filesystem::path store_root = out.string() + ".store";
  std::filesystem::remove_all(store_root);
  auto store = LayoutStore::open(store_root);
  double t0 = now();
  std::unique_ptr<Ingest> ingest = store->begin_ingest();
  LayerWriter w(*ingest, o);
  w.tar().add_tree(dir);
  LayerResult r = w.finish();
  double t = now() - t0;
  std::filesystem::rename(store_root / "blobs" / "sha256" / r.descriptor.digest.hex(), out);
  std::filesystem::remove_all(store_root);
  std::printf("seconds=%.3f mbps=%.1f tar_bytes=%llu blob_bytes=%lld frames=%llu compressor=%s peak_rss_mib=%.1f digest=%s\n", t,
              static_cast<double>(r.uncompressed_size) / 1e6 / t, static_cast<unsigned long long>(r.uncompressed_size),
              static_cast<long long>(r.descriptor.size), static_cast<unsigned long long>(r.frames), r.compressor.c_str(),
              peak_rss_mib(), r.descriptor.digest.str().c_str());
  return 0;
}

// The expected digest comes from the caller, as a store knows it from the manifest: hashing the
// blob here first would pull it into the page cache and make a cold read warm.
int read_cmd(const std::filesystem::path& blob, const std::string& digest) {
  Digest expected = Digest::parse(digest);
  auto size = static_cast<std::int64_t>(std::filesystem::file_size(blob));
  double t0 = now();
  // The store's read path: verified, and read ahead on a second thread for large blobs.
  TarReader r(open_verified(FdSource::open(blob), expected, size, "bench blob"));
  std::vector<std::byte> buf(1u << 20);
  std::uint64_t data = 0, entries = 0;
  while (auto e = r.next()) {
    ++entries;
    if (e->type != TarType::File) continue;
    while (std::size_t n = r.data().read(buf)) data += n;
  }
  double t = now() - t0;
  std::printf("seconds=%.3f mbps=%.1f file_bytes=%llu entries=%llu verified=%d peak_rss_mib=%.1f\n", t,
              static_cast<double>(data) / 1e6 / t, static_cast<unsigned long long>(data),
              static_cast<unsigned long long>(entries), 1, peak_rss_mib());  // next() returned end: verified
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "gen" && argc == 5) return gen(argv[2], std::stoull(argv[3]), std::stoi(argv[4]));
    if (cmd == "write" && argc >= 5) return write_cmd(argc, argv);
    if (cmd == "read" && argc == 4) return read_cmd(argv[2], argv[3]);
    std::fprintf(stderr, "usage: bench_layer_write gen DIR TOTAL_MIB FILES | write DIR OUT gzip|zstd|none [--level N] "
                         "[--threads N] [--single] | read BLOB DIGEST\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_layer_write: error: %s\n", e.what());
    return 1;
  }
}
