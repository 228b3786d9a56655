// Store housekeeping for long-lived runners, end to end through the cbuild binary: `cbuild df`
// against what is on disk, `prune --keep-storage` (least recently used build cache first, tagged
// images untouched), `prune --filter until=`, and their bad values. A record's last use is its
// file's mtime (builder/cache/cache.h); the tests age records and blobs with utimensat, as
// `touch -d` would, to stand for time passing (blobs too, past prune's one-minute grace).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "overlay/snapshot_store.h"
#include "tests/support/build_project.h"
#include "tests/support/root.h"

using namespace cbuild;
namespace fs = std::filesystem;

namespace {

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// du -sB1 of one tree: st_blocks × 512 of every entry, each inode once.
std::int64_t du(const fs::path& p) {
  std::set<std::pair<dev_t, ino_t>> seen;
  std::int64_t total = 0;
  auto add = [&](const fs::path& q) {
    struct stat st {};
    if (::lstat(q.c_str(), &st) == 0 && seen.insert({st.st_dev, st.st_ino}).second)
      total += static_cast<std::int64_t>(st.st_blocks) * 512;
  };
  add(p);
  if (fs::is_directory(fs::symlink_status(p)))
    for (const auto& e : fs::recursive_directory_iterator(p)) add(e.path());
  return total;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (!n.starts_with(".")) out.insert(n);
  }
  return out;
}

std::set<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> out;
  for (const auto& x : a)
    if (!b.count(x)) out.insert(x);
  return out;
}

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

void set_age(const fs::path& p, std::chrono::seconds ago) {
  fs::last_write_time(p, fs::file_time_type::clock::now() - ago);
}

std::int64_t age_of(const fs::path& p) {
  return std::chrono::duration_cast<std::chrono::seconds>(fs::file_time_type::clock::now() - fs::last_write_time(p))
      .count();
}

// What one untagged build left in the store: its step records, the layer blobs they name, the
// snapshots it made.
struct Built {
  std::set<std::string> records, layers, snapshots;
};

struct Store {
  test::BuildProject p;
  fs::path steps = p.root / "cache" / "steps";
  fs::path blobs = p.root / "blobs" / "sha256";
  fs::path snaps = p.root / "snapshots";

  // Builds `dockerfile` with `files` in a fresh context; `extra` are more build flags.
  Built build(const std::string& dockerfile, const std::map<std::string, std::string>& files,
              const std::vector<std::string>& extra = {}) {
    fs::remove_all(p.ctx);
    fs::create_directories(p.ctx);
    for (const auto& [name, text] : files) p.file(name, text);
    p.file("Dockerfile", dockerfile);
    auto records0 = names_in(steps), snaps0 = names_in(snaps);
    auto r = p.build(extra);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    Built b{.records = minus(names_in(steps), records0),
            .snapshots = minus(minus(names_in(snaps), snaps0), image_chains())};
    for (const auto& rec : b.records) {
      auto j = nlohmann::json::parse(read_file(steps / rec));
      if (j["layer"].is_object()) b.layers.insert(j["layer"]["digest"].get<std::string>().substr(7));
    }
    return b;
  }
  // The snapshots (chain hex) of every tagged image's layer stack.
  std::set<std::string> image_chains() const {
    std::set<std::string> out;
    auto store = oci::LayoutStore::open(p.root);
    for (const auto& [name, desc] : store->tags()) {
      auto config = nlohmann::json::parse(store->read_blob(p.manifest_of(desc.digest).config.digest));
      std::vector<oci::Digest> diff_ids;
      for (const auto& d : config["rootfs"]["diff_ids"]) diff_ids.push_back(oci::Digest::parse(d.get<std::string>()));
      for (const auto& c : overlay::chain_ids(diff_ids)) out.insert(c.hex());
    }
    return out;
  }
  // The disk usage of what the build cache holds of `b` alone.
  std::int64_t bytes_of(const Built& b) const {
    std::int64_t n = 0;
    for (const auto& r : b.records) n += du(steps / r);
    for (const auto& l : b.layers) n += du(blobs / l);
    for (const auto& s : b.snapshots) n += du(snaps / s);
    return n;
  }
  void age_records(const Built& b, std::chrono::seconds ago) {
    for (const auto& r : b.records) set_age(steps / r, ago);
  }
  void age_all_blobs() {
    for (const auto& n : names_in(blobs)) set_age(blobs / n, std::chrono::hours(5));
  }
  bool kept(const Built& b) const {
    for (const auto& r : b.records)
      if (!fs::exists(steps / r)) return false;
    for (const auto& l : b.layers)
      if (!fs::exists(blobs / l)) return false;
    for (const auto& s : b.snapshots)
      if (!fs::exists(snaps / s)) return false;
    return true;
  }
  bool gone(const Built& b) const {
    for (const auto& r : b.records)
      if (fs::exists(steps / r)) return false;
    for (const auto& l : b.layers)
      if (fs::exists(blobs / l)) return false;
    for (const auto& s : b.snapshots)
      if (fs::exists(snaps / s)) return false;
    return true;
  }

  struct Row {
    std::size_t count = 0;
    std::int64_t size = 0, reclaimable = 0;
  };
  std::map<std::string, Row> df() const {
    auto r = p.cbuild({"df", "--format", "json"});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    std::map<std::string, Row> rows;
    std::size_t at = 0;
    while (at < r.out.size()) {
      auto nl = r.out.find('\n', at);
      auto j = nlohmann::json::parse(r.out.substr(at, nl - at));
      rows[j["Type"].get<std::string>()] = {j["TotalCount"].get<std::size_t>(), j["Size"].get<std::int64_t>(),
                                            j["Reclaimable"].get<std::int64_t>()};
      at = nl + 1;
    }
    return rows;
  }
};

const std::string kCopyRun = "COPY data.bin /data.bin\nRUN cat /data.bin > /data.copy\n";

std::string dockerfile(const std::string& base, const std::string& steps) { return "FROM " + base + "\n" + steps; }

int cached_steps(const test::CommandResult& r) {
  int n = 0;
  for (std::size_t at = r.err.find(" CACHED"); at != std::string::npos; at = r.err.find(" CACHED", at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("df: every blob, snapshot, step record and cache mount counted once, as du counts them") {
  REQUIRE_ROOT();
  Store s;
  s.build(dockerfile(s.p.base, "COPY t.bin /t.bin\nENV T=1\n"), {{"t.bin", random_bytes(300 << 10, 1)}},
          {"-t", "kept:1"});
  Built a = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(1 << 20, 2)}});
  const std::string to_cache = "RUN --mount=type=cache,target=/c,id=cm head -c 100000 /data.bin > /c/x\n";
  Built b = s.build(dockerfile(s.p.base, kCopyRun + to_cache), {{"data.bin", random_bytes(1 << 20, 3)}});
  REQUIRE(a.layers.size() == 2);
  REQUIRE(a.snapshots.size() >= 1);

  auto rows = s.df();
  REQUIRE(rows.size() == 5);
  std::int64_t on_disk = 0;
  for (const auto& n : names_in(s.blobs)) on_disk += du(s.blobs / n);
  for (const auto& n : names_in(s.snaps)) on_disk += du(s.snaps / n);
  for (const auto& n : names_in(s.steps)) on_disk += du(s.steps / n);
  fs::path mounts = s.p.root / "cache" / "mounts";
  std::size_t instances = 0;
  for (const auto& k : names_in(mounts))
    for (const auto& i : names_in(mounts / k))
      if (fs::is_directory(mounts / k / i)) {
        on_disk += du(mounts / k / i);
        ++instances;
      }
  std::int64_t total = 0;
  for (const auto& [type, row] : rows) total += row.size;
  CHECK(total == on_disk);

  CHECK(rows["Images"].count == 2);  // the busybox base and kept:1
  CHECK(rows["Images"].reclaimable == 0);
  CHECK(rows["Build cache"].count == names_in(s.steps).size());
  // The two untagged builds are build cache only: their layers and snapshots, counted once.
  std::int64_t untagged = s.bytes_of(a) + s.bytes_of(b);
  CHECK(rows["Build cache"].size >= untagged);
  CHECK(rows["Build cache"].size < untagged + 64 * 1024);  // + kept:1's record files
  CHECK(rows["Build cache"].reclaimable == rows["Build cache"].size);
  CHECK(rows["Cache mounts"].count == instances);
  CHECK(instances == 1);
  CHECK(rows["Cache mounts"].size >= 100000);
  CHECK(rows["Unused blobs"].count >= 4);  // the untagged images' manifests and configs

  auto table = s.p.cbuild({"df"});
  REQUIRE_MESSAGE(table.exit_code == 0, table.err);
  CHECK(table.out.starts_with("TYPE"));
  CHECK(table.out.find("\nBuild cache ") != std::string::npos);
  auto verbose = s.p.cbuild({"df", "-v"});
  REQUIRE_MESSAGE(verbose.exit_code == 0, verbose.err);
  for (const auto& rec : a.records) CHECK(verbose.out.find(rec.substr(0, 12)) != std::string::npos);
  CHECK(verbose.out.find("Snapshots space usage:") != std::string::npos);
}

TEST_CASE("a cache hit refreshes the record's last use") {
  REQUIRE_ROOT();
  Store s;
  std::map<std::string, std::string> files{{"data.bin", random_bytes(64 << 10, 4)}};
  Built a = s.build(dockerfile(s.p.base, kCopyRun), files);
  REQUIRE(a.records.size() == 2);
  s.age_records(a, std::chrono::hours(3));
  for (const auto& r : a.records) REQUIRE(age_of(s.steps / r) > 3600);
  auto hit = s.p.build();
  REQUIRE_MESSAGE(hit.exit_code == 0, hit.err);
  CHECK(cached_steps(hit) == 2);
  for (const auto& r : a.records) CHECK(age_of(s.steps / r) < 600);
}

TEST_CASE("prune --keep-storage removes the least recently used build cache first, never an image") {
  REQUIRE_ROOT();
  Store s;
  std::map<std::string, std::string> tf{{"t.bin", random_bytes(300 << 10, 10)}};
  const std::string tdf = dockerfile(s.p.base, "COPY t.bin /t.bin\nENV T=1\n");
  Built t = s.build(tdf, tf, {"-t", "kept:1"});
  std::map<std::string, std::string> af{{"data.bin", random_bytes(1 << 20, 11)}};
  Built a = s.build(dockerfile(s.p.base, kCopyRun), af);
  Built b = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(1 << 20, 12)}});
  Built c = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(1 << 20, 13)}});
  s.age_all_blobs();
  s.age_records(a, std::chrono::hours(4));
  s.age_records(b, std::chrono::hours(3));
  s.age_records(c, std::chrono::hours(2));
  s.age_records(t, std::chrono::minutes(30));
  // a is hit again: now the most recently used, b the least.
  fs::remove_all(s.p.ctx);
  fs::create_directories(s.p.ctx);
  s.p.file("data.bin", af["data.bin"]);
  s.p.file("Dockerfile", dockerfile(s.p.base, kCopyRun));
  auto hit = s.p.build();
  REQUIRE_MESSAGE(hit.exit_code == 0, hit.err);
  REQUIRE(cached_steps(hit) == 2);

  std::int64_t before = s.df()["Build cache"].size;
  std::int64_t b_bytes = s.bytes_of(b);
  REQUIRE(b_bytes > (2 << 20));
  // Room for all but b, and not for all but b and the next one (c).
  std::int64_t limit = before - b_bytes + (256 << 10);
  REQUIRE(limit < before);
  auto r = s.p.cbuild({"prune", "--keep-storage", std::to_string(limit)});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.empty());
  CHECK(s.gone(b));
  CHECK(s.kept(a));
  CHECK(s.kept(c));
  for (const auto& rec : t.records) CHECK(fs::exists(s.steps / rec));
  auto after = s.df()["Build cache"];
  CHECK(after.size <= limit);
  CHECK(after.size > 0);

  // The store is whole: the tagged image is listed, inspects, runs, and rebuilds from cache;
  // the kept records still hit; the pruned build runs again.
  auto images = s.p.cbuild({"images"});
  REQUIRE(images.exit_code == 0);
  CHECK(images.out.find("kept") != std::string::npos);
  CHECK(s.p.cbuild({"inspect", "kept:1"}).exit_code == 0);
  auto run = s.p.cbuild({"run", "--rm", "kept:1", "wc", "-c", "/t.bin"});
  REQUIRE_MESSAGE(run.exit_code == 0, run.err);
  CHECK(run.out.find(std::to_string(300 << 10)) != std::string::npos);
  fs::remove_all(s.p.ctx);
  fs::create_directories(s.p.ctx);
  s.p.file("t.bin", tf["t.bin"]);
  s.p.file("Dockerfile", tdf);
  auto trebuild = s.p.build({"-t", "kept:1"});
  REQUIRE_MESSAGE(trebuild.exit_code == 0, trebuild.err);
  CHECK(cached_steps(trebuild) == 2);
  s.p.file("data.bin", af["data.bin"]);
  s.p.file("Dockerfile", dockerfile(s.p.base, kCopyRun));
  auto arebuild = s.p.build();
  REQUIRE_MESSAGE(arebuild.exit_code == 0, arebuild.err);
  CHECK(cached_steps(arebuild) == 2);

  // --keep-storage 0 empties the build cache and still keeps every image.
  s.age_all_blobs();
  r = s.p.cbuild({"prune", "--keep-storage", "0"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(names_in(s.steps).empty());
  CHECK(s.df()["Build cache"].size == 0);
  CHECK(s.p.cbuild({"run", "--rm", "kept:1", "true"}).exit_code == 0);
  CHECK(s.p.cbuild({"images", "-q"}).out.size() > 0);
}

TEST_CASE("prune --filter until removes only records unused for longer; with --keep-storage, both must hold") {
  REQUIRE_ROOT();
  Store s;
  Built p1 = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(1 << 20, 20)}});
  Built p2 = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(1 << 20, 21)}});
  Built p3 = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(1 << 20, 22)}});
  s.age_all_blobs();
  s.age_records(p1, std::chrono::hours(3));
  s.age_records(p2, std::chrono::hours(2));
  s.age_records(p3, std::chrono::minutes(10));

  // Over the limit, only records older than an hour are candidates, and only until it is met.
  std::int64_t before = s.df()["Build cache"].size;
  std::int64_t limit = before - s.bytes_of(p1) + (256 << 10);
  auto r = s.p.cbuild({"prune", "--filter", "until=1h", "--keep-storage", std::to_string(limit)});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(s.gone(p1));
  CHECK(s.kept(p2));
  CHECK(s.kept(p3));

  // A limit the old records cannot meet: they go, the recent one stays, and a note says why.
  r = s.p.cbuild({"prune", "--filter", "until=1h30m", "--keep-storage", "1MiB"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(s.gone(p2));
  CHECK(s.kept(p3));
  CHECK(r.err.find("note: the build cache still takes") != std::string::npos);

  // -a with a limit: the limit decides the step records; the RUN cache mounts go whole.
  Built m = s.build(dockerfile(s.p.base, "RUN --mount=type=cache,target=/c,id=cm echo x > /c/x\n"), {});
  fs::path mounts = s.p.root / "cache" / "mounts";
  REQUIRE(names_in(mounts).size() == 1);
  r = s.p.cbuild({"prune", "-a", "--filter", "until=11m"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(s.kept(p3));
  CHECK(s.kept(m));
  CHECK(names_in(mounts).empty());
  s.age_records(m, std::chrono::hours(1));
  r = s.p.cbuild({"prune", "--filter", "until=9m"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(s.gone(p3));
  CHECK(names_in(s.steps).empty());
  CHECK(s.p.cbuild({"images", "-q"}).exit_code == 0);
  auto again = s.p.build();
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(cached_steps(again) == 0);
}

TEST_CASE("prune and df: a bad value is one clear usage error and changes nothing") {
  REQUIRE_ROOT();
  Store s;
  Built a = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(64 << 10, 30)}});
  s.age_all_blobs();
  s.age_records(a, std::chrono::hours(3));
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const auto& c : std::vector<Case>{
           {{"prune", "--keep-storage", "12XB"}, "invalid --keep-storage \"12XB\""},
           {{"prune", "--keep-storage", "-5"}, "invalid --keep-storage \"-5\""},
           {{"prune", "--keep-storage", "1.5.3G"}, "invalid --keep-storage \"1.5.3G\""},
           {{"prune", "--filter", "until=abc"}, "invalid --filter until \"abc\""},
           {{"prune", "--filter", "until=10"}, "invalid --filter until \"10\""},
           {{"prune", "--filter", "until=-1h"}, "invalid --filter until \"-1h\""},
           {{"prune", "--filter", "label=x"}, "unknown filter key \"label\""},
           {{"prune", "--filter", "until"}, "invalid --filter \"until\""},
           {{"prune", "--filter", "until=1h", "--filter", "until=2h"}, "until given more than once"},
           {{"df", "--format", "yaml"}, "invalid --format \"yaml\""},
       }) {
    CAPTURE(c.args);
    auto r = s.p.cbuild(c.args);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.starts_with("cbuild: error: "));
    CHECK(r.err.find(c.says) != std::string::npos);
    CHECK(count_lines(r.err) == 1);
    CHECK(s.kept(a));
  }
  // The accepted spellings of docker's units (no record is old enough to go).
  for (const char* size : {"10GB", "512MB", "1.5GiB", "100", "100b", "2k", "3 MiB", "1tb"}) {
    auto r = s.p.cbuild({"prune", "--keep-storage", size, "--filter", "until=1000h"});
    CHECK_MESSAGE(r.exit_code == 0, size, r.err);
  }
  CHECK(s.kept(a));
  for (const char* d : {"24h", "90m", "1h30m", "1.5h", "300ms", "0"}) {
    auto r = s.p.cbuild({"prune", "--filter", std::string("until=") + d, "--keep-storage", "1TB"});
    CHECK_MESSAGE(r.exit_code == 0, d, r.err);
  }
  CHECK(s.kept(a));

  // Records go at once; their layer blobs, still within the minute's grace, with a later prune,
  // and prune says so instead of letting them look freed.
  Built fresh = s.build(dockerfile(s.p.base, kCopyRun), {{"data.bin", random_bytes(64 << 10, 31)}});
  auto r = s.p.cbuild({"prune", "--keep-storage", "0"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.find("note: 2 layer blob(s) of removed records") != std::string::npos);
  CHECK(count_lines(r.err) == 1);
  for (const auto& rec : fresh.records) CHECK(!fs::exists(s.steps / rec));
  for (const auto& l : fresh.layers) CHECK(fs::exists(s.blobs / l));
  s.age_all_blobs();
  r = s.p.cbuild({"prune"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.err.empty());
  CHECK(s.gone(fresh));
  CHECK(s.gone(a));
  CHECK(s.df()["Unused blobs"].count == 0);
}
