// ContentHashes: file hashes remembered by stat data, and the COPY key that uses them.
#include "builder/cache/content_hashes.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "builder/steps/copy_files.h"
#include "oci/base/fs.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::builder;

namespace {

std::int64_t far_future() { return std::int64_t{4102444800} * 1000000000; }  // 2100: every file is settled

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }

FileStamp stamp_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return FileStamp::of(st);
}

oci::Digest key_of(const fs::path& ctx, ContentHashes* hashes) {
  UniqueFd root = open_file(ctx, O_RDONLY | O_DIRECTORY);
  CopySpec spec{.sources = {"src"}, .dest = "/app/"};
  CopyPlan plan = plan_copy(root.get(), spec, nullptr);
  return content_key(root.get(), plan, spec, hashes);
}

// Past the coarse clock tick the kernel stamps ctime with, so a rewrite gets a new ctime.
void next_tick() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

}  // namespace

TEST_CASE("ContentHashes: found by the exact stamp, saved and loaded, fresh entries kept out of the file") {
  TempDir d;
  write(d.path() / "a", "alpha");
  FileStamp s = stamp_of(d.path() / "a");
  oci::Digest da = oci::Digest::of("alpha");
  {
    ContentHashes h(d.path() / "hashes", far_future());
    CHECK_FALSE(h.find(s));
    h.put(s, da);
    CHECK(h.find(s) == da);
    FileStamp other = s;
    other.size += 1;
    CHECK_FALSE(h.find(other));
    h.save();
  }
  ContentHashes loaded(d.path() / "hashes", far_future());
  CHECK(loaded.find(s) == da);

  // A file changed within the last two seconds is not settled: it serves this process only.
  ContentHashes strict(d.path() / "hashes2");
  CHECK_FALSE(strict.settled(s));
  strict.put(s, da);
  CHECK(strict.find(s) == da);
  strict.save();
  CHECK_FALSE(fs::exists(d.path() / "hashes2"));

  // A damaged file is an empty cache.
  write(d.path() / "hashes3", "cbuild contenthash 1\nshort");
  ContentHashes damaged(d.path() / "hashes3", far_future());
  CHECK_FALSE(damaged.find(s));
}

TEST_CASE("ContentHashes: a rewrite with the same size and mtime (touch -d back) is still seen, by ctime") {
  TempDir d;
  fs::create_directories(d.path() / "ctx" / "src");
  fs::path f = d.path() / "ctx" / "src" / "f";
  write(f, "one content");
  struct stat before {};
  REQUIRE(::stat(f.c_str(), &before) == 0);
  ContentHashes h(d.path() / "hashes", far_future());
  oci::Digest k1 = key_of(d.path() / "ctx", &h);
  CHECK(h.find(stamp_of(f)));  // recorded while the key was made
  CHECK(key_of(d.path() / "ctx", &h) == k1);

  next_tick();
  write(f, "two content");  // same size
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, f.c_str(), times, 0) == 0);
  struct stat after {};
  REQUIRE(::stat(f.c_str(), &after) == 0);
  REQUIRE(after.st_size == before.st_size);
  REQUIRE(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  REQUIRE(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  // Only ctime (which utimensat sets to now, and nothing can set back) tells the two apart.
  CHECK_FALSE(h.find(stamp_of(f)));
  oci::Digest k2 = key_of(d.path() / "ctx", &h);
  CHECK(k2 != k1);
  CHECK(k2 == key_of(d.path() / "ctx", nullptr));  // what a full reread gives

  // A mode change and a replacement by another file (a new inode) miss as well.
  next_tick();
  REQUIRE(::chmod(f.c_str(), 0600) == 0);
  CHECK_FALSE(h.find(stamp_of(f)));
  oci::Digest k3 = key_of(d.path() / "ctx", &h);
  CHECK(k3 != k2);
  next_tick();
  write(d.path() / "ctx" / "g", "two content");
  REQUIRE(::chmod((d.path() / "ctx" / "g").c_str(), 0600) == 0);
  REQUIRE(::utimensat(AT_FDCWD, (d.path() / "ctx" / "g").c_str(), times, 0) == 0);
  fs::rename(d.path() / "ctx" / "g", f);
  CHECK_FALSE(h.find(stamp_of(f)));
  CHECK(key_of(d.path() / "ctx", &h) == k3);  // same content, mode, name: same key, hashed again
}

TEST_CASE("content_key: with a ContentHashes hit the file is not read") {
  TempDir d;
  fs::create_directories(d.path() / "ctx" / "src");
  fs::path f = d.path() / "ctx" / "src" / "f";
  write(f, "real");
  oci::Digest real = key_of(d.path() / "ctx", nullptr);
  // A recorded digest that is not the file's: the key follows the record, so nothing was read.
  ContentHashes h(d.path() / "hashes", far_future());
  h.put(stamp_of(f), oci::Digest::of("recorded"));
  oci::Digest from_record = key_of(d.path() / "ctx", &h);
  CHECK(from_record != real);
  write(d.path() / "ctx" / "src" / "f", "recorded");
  CHECK(key_of(d.path() / "ctx", nullptr) == from_record);
}

TEST_CASE("ContentHashes: the saved file is searched in place, merged on the next save, and loaded only when asked") {
  TempDir d;
  auto stamp = [](std::uint64_t i) {
    return FileStamp{.dev = 1 + i % 3, .ino = 1000003 * i % 7919 + i, .size = static_cast<std::int64_t>(i),
                     .mtime_ns = 1, .ctime_ns = 2, .mode = 0100644};
  };
  auto digest = [](std::uint64_t i, int gen) { return oci::Digest::of("file " + std::to_string(i) + " gen " + std::to_string(gen)); };
  {
    ContentHashes h(d.path() / "hashes", far_future());
    for (std::uint64_t i = 0; i < 2000; ++i) h.put(stamp(i), digest(i, 1));
    h.save();
  }
  {
    ContentHashes h(d.path() / "hashes", far_future());
    for (std::uint64_t i = 0; i < 2000; i += 7) CHECK(h.find(stamp(i)) == digest(i, 1));
    FileStamp moved = stamp(5);
    moved.ctime_ns += 1;
    CHECK_FALSE(h.find(moved));  // same inode, other stamp
    // Replace some, add some: the next save keeps the rest of the old file.
    for (std::uint64_t i = 0; i < 100; ++i) h.put(stamp(i), digest(i, 2));
    for (std::uint64_t i = 2000; i < 2100; ++i) h.put(stamp(i), digest(i, 2));
    h.save();
  }
  ContentHashes h(d.path() / "hashes", far_future());
  for (std::uint64_t i = 0; i < 2100; ++i) {
    CAPTURE(i);
    CHECK(h.find(stamp(i)) == digest(i, i < 100 || i >= 2000 ? 2 : 1));
  }
  // The file is written sorted; one whose records are out of order is not trusted (empty).
  std::string bytes = read_file(d.path() / "hashes");
  std::string header = bytes.substr(0, bytes.find('\n') + 1);
  std::string swapped = header + bytes.substr(header.size() + 80, 80) + bytes.substr(header.size(), 80) + bytes.substr(header.size() + 160);
  write(d.path() / "unsorted", swapped);
  ContentHashes bad(d.path() / "unsorted", far_future());
  CHECK_FALSE(bad.find(stamp(0)));
  // Not read at construction: a file that appears before the first question is still used.
  ContentHashes lazy(d.path() / "later", far_future());
  fs::copy_file(d.path() / "hashes", d.path() / "later");
  CHECK(lazy.find(stamp(3)) == digest(3, 2));
}

// Past a few MiB, content_key() hashes on several threads (in batches of consecutive files):
// every file must still get its own digest, and the key must be the one the recorded digests
// give (the serial path).
TEST_CASE("content_key: a large context hashed on several threads gives each file its digest and the same key") {
  TempDir d;
  fs::path src = d.path() / "ctx" / "src";
  std::map<std::string, std::string> contents;
  for (int i = 0; i < 48; ++i) {  // 48 MiB: past the threshold, three batches by size
    std::string rel = "big/f" + std::to_string(i);
    contents[rel] = std::string(1 << 20, static_cast<char>('a' + i % 26)) + std::to_string(i);
  }
  for (int i = 0; i < 700; ++i)  // and batches that end by file count
    contents["small/d" + std::to_string(i % 7) + "/s" + std::to_string(i)] = "small " + std::to_string(i);
  for (const auto& [rel, text] : contents) {
    fs::create_directories((src / rel).parent_path());
    write(src / rel, text);
  }
  ContentHashes h(d.path() / "hashes", far_future());
  oci::Digest key = key_of(d.path() / "ctx", &h);
  ContentHashes known(d.path() / "known", far_future());
  for (const auto& [rel, text] : contents) {
    CAPTURE(rel);
    std::optional<oci::Digest> got = h.find(stamp_of(src / rel));
    REQUIRE(got);
    CHECK(*got == oci::Digest::of(text));
    known.put(stamp_of(src / rel), oci::Digest::of(text));
  }
  CHECK(key_of(d.path() / "ctx", &known) == key);
  CHECK(key_of(d.path() / "ctx", nullptr) == key);
  write(src / "big/f7", "changed");
  CHECK(key_of(d.path() / "ctx", nullptr) != key);
}
