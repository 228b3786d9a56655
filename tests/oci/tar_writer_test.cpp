#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"
#include "tests/oci/pipeline_test_util.h"
#include "tests/support/root.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

struct ReadEntry {
  TarEntry entry;
  std::string data;
};

std::vector<ReadEntry> read_tar(const std::string& blob) {
  TarReader r(std::make_unique<MemorySource>(blob), "test tar");
  std::vector<ReadEntry> out;
  while (auto e = r.next()) out.push_back({*e, e->type == TarType::File ? read_all(r.data(), 1u << 30) : ""});
  return out;
}

std::string tar_of_tree(const std::filesystem::path& dir, TarWriterOptions o = {}) {
  BufferSink out;
  TarWriter w(out, o);
  w.add_tree(dir);
  w.finish();
  CHECK(out.finished());
  return out.take();
}

// Lists a tar with GNU tar (the interop reference): "type mode owner size path[ -> target]".
std::string gnu_tar_listing(const std::string& blob) {
  TempDir d;
  test::write_text_file(d.path() / "t.tar", blob);
  std::string cmd = "tar --numeric-owner -tvf " + (d.path() / "t.tar").string() + " > " + (d.path() / "l").string();
  REQUIRE(std::system(cmd.c_str()) == 0);
  return read_file(d.path() / "l");
}

}  // namespace

TEST_CASE("entries of every type round-trip through TarWriter and TarReader") {
  BufferSink out;
  TarWriter w(out);
  std::string long_name = "deep/" + std::string(150, 'n') + "/" + std::string(120, 'f') + ".txt";
  std::string data = test::text_bytes(10000, 1);
  TarEntry dir{.path = "deep", .type = TarType::Dir, .mode = 0755, .uid = 1000, .gid = 1000, .mtime_sec = 1700000000};
  TarEntry file{.path = long_name, .type = TarType::File, .mode = 04755, .uname = "alice", .gname = "staff",
                .size = static_cast<std::int64_t>(data.size()), .mtime_sec = 1700000001};
  file.xattrs = {{"user.b", std::string("v\0b", 3)}, {"security.capability", "cap"}, {"user.a", "1"}};
  TarEntry hard{.path = "deep/hard", .type = TarType::Hardlink, .link_target = long_name};
  TarEntry sym{.path = "deep/sym", .type = TarType::Symlink, .mode = 0777, .link_target = "../" + std::string(200, 't')};
  TarEntry chr{.path = "dev/null", .type = TarType::Char, .mode = 0666, .dev_major = 1, .dev_minor = 3};
  TarEntry blk{.path = "dev/sda", .type = TarType::Block, .mode = 0660, .dev_major = 8, .dev_minor = 0};
  TarEntry fifo{.path = "run/fifo", .type = TarType::Fifo, .mode = 0600};
  TarEntry empty{.path = "empty", .type = TarType::File, .mode = 0600, .size = 0};
  MemorySource src(data);
  w.add(dir);
  w.add(file, &src);
  for (const auto* e : {&hard, &sym, &chr, &blk, &fifo, &empty}) w.add(*e);
  w.finish();
  CHECK(w.entries_written() == 8);
  CHECK(w.bytes_written() == out.str().size());
  CHECK(out.str().size() % 512 == 0);
  CHECK(out.str().substr(out.str().size() - 1024) == std::string(1024, '\0'));

  auto got = read_tar(out.str());
  REQUIRE(got.size() == 8);
  CHECK(got[0].entry.path == "deep");
  CHECK(got[0].entry.type == TarType::Dir);
  CHECK(got[0].entry.uid == 1000);
  CHECK(got[1].entry.path == long_name);
  CHECK(got[1].entry.mode == 04755);
  CHECK(got[1].entry.uname == "alice");
  CHECK(got[1].entry.mtime_sec == 1700000001);
  CHECK(got[1].data == data);
  std::map<std::string, std::string> xa(got[1].entry.xattrs.begin(), got[1].entry.xattrs.end());
  CHECK(xa.size() == 3);
  CHECK(xa["user.b"] == std::string("v\0b", 3));
  CHECK(xa["security.capability"] == "cap");
  CHECK(got[2].entry.type == TarType::Hardlink);
  CHECK(got[2].entry.link_target == long_name);
  CHECK(got[3].entry.link_target == sym.link_target);
  CHECK(got[4].entry.type == TarType::Char);
  CHECK(got[4].entry.dev_major == 1);
  CHECK(got[4].entry.dev_minor == 3);
  CHECK(got[5].entry.type == TarType::Block);
  CHECK(got[6].entry.type == TarType::Fifo);
  CHECK(got[7].entry.size == 0);

  // GNU tar reads it too, with the long names and link targets intact.
  std::string listing = gnu_tar_listing(out.str());
  CHECK(listing.find(long_name) != std::string::npos);
  CHECK(listing.find("deep/hard link to " + long_name) != std::string::npos);
  CHECK(listing.find("crw-rw-rw- 0/0") != std::string::npos);
  // No atime/ctime records anywhere.
  CHECK(out.str().find("atime=") == std::string::npos);
  CHECK(out.str().find("ctime=") == std::string::npos);
  CHECK(out.str().find("LIBARCHIVE.xattr") == std::string::npos);
  CHECK(out.str().find("SCHILY.xattr.user.a") != std::string::npos);
}

TEST_CASE("malformed entries and short data are rejected with a message naming the path") {
  BufferSink out;
  TarWriter w(out);
  CHECK_THROWS_AS(w.add(TarEntry{.path = "/abs"}), Error);
  CHECK_THROWS_AS(w.add(TarEntry{.path = ""}), Error);
  CHECK_THROWS_AS(w.add(TarEntry{.path = "link", .type = TarType::Symlink}), Error);
  std::string data = "short";
  MemorySource src(data);
  try {
    w.add(TarEntry{.path = "f", .size = 100}, &src);
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::DataLoss);
    CHECK(std::string(e.what()).find("\"f\"") != std::string::npos);
  }
}

TEST_CASE("mtimes are clamped to SOURCE_DATE_EPOCH and the variable is validated") {
  BufferSink out;
  TarWriter w(out, TarWriterOptions{.clamp_mtime = 1000});
  w.add(TarEntry{.path = "new", .mtime_sec = 5000});
  w.add(TarEntry{.path = "old", .mtime_sec = 10});
  w.finish();
  auto got = read_tar(out.str());
  REQUIRE(got.size() == 2);
  CHECK(got[0].entry.mtime_sec == 1000);
  CHECK(got[1].entry.mtime_sec == 10);

  ::setenv("SOURCE_DATE_EPOCH", "1234", 1);
  CHECK(source_date_epoch_from_env() == 1234);
  ::setenv("SOURCE_DATE_EPOCH", "12x", 1);
  CHECK_THROWS_AS(source_date_epoch_from_env(), Error);
  ::unsetenv("SOURCE_DATE_EPOCH");
  CHECK_FALSE(source_date_epoch_from_env());
}

TEST_CASE("add_tree: sorted by path bytes, hardlinks, symlinks, fifos, xattrs, sparse files; sockets skipped") {
  TempDir d;
  auto root = d.path() / "root";
  make_dirs(root / "b" / "sub");
  make_dirs(root / "a");
  test::write_text_file(root / "b" / "sub" / "z.txt", "zzz");
  test::write_text_file(root / "a" / "one", "one", 0600);
  test::write_text_file(root / "B", "upper");
  test::write_text_file(root / "a.txt", "dot");
  REQUIRE(::link((root / "a" / "one").c_str(), (root / "b" / "two").c_str()) == 0);
  REQUIRE(::symlink("../a/one", (root / "b" / "link").c_str()) == 0);
  REQUIRE(::mkfifo((root / "fifo").c_str(), 0640) == 0);
  // A sparse file: 8 MiB hole then a few bytes.
  {
    UniqueFd fd = open_file(root / "sparse", O_WRONLY | O_CREAT, 0644);
    REQUIRE(::pwrite(fd.get(), "end", 3, 8 << 20) == 3);
  }
  bool have_xattr = ::setxattr((root / "a.txt").c_str(), "user.note", "hi", 2, 0) == 0;
  // A socket is skipped.
  {
    int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sp = (root / "sock").string();
    if (sp.size() < sizeof addr.sun_path) {
      std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
      CHECK(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    ::close(s);
  }
  std::string blob = tar_of_tree(root);
  auto got = read_tar(blob);
  std::vector<std::string> paths;
  for (const auto& e : got) paths.push_back(e.entry.path);
  std::vector<std::string> want = {"B", "a", "a/one", "a.txt", "b", "b/link", "b/sub", "b/sub/z.txt", "b/two", "fifo", "sparse"};
  CHECK(paths == want);
  std::map<std::string, ReadEntry> by;
  for (const auto& e : got) by[e.entry.path] = e;
  CHECK(by["a/one"].entry.mode == 0600);
  CHECK(by["a/one"].data == "one");
  CHECK(by["b/two"].entry.type == TarType::Hardlink);
  CHECK(by["b/two"].entry.link_target == "a/one");
  CHECK(by["b/link"].entry.type == TarType::Symlink);
  CHECK(by["b/link"].entry.link_target == "../a/one");
  CHECK(by["fifo"].entry.type == TarType::Fifo);
  CHECK(by["fifo"].entry.mode == 0640);
  CHECK(by["sparse"].data.size() == (8u << 20) + 3);
  CHECK(by["sparse"].data.substr(0, 4096) == std::string(4096, '\0'));
  CHECK(by["sparse"].data.substr(8u << 20) == "end");
  CHECK(by["a"].entry.type == TarType::Dir);
  if (have_xattr) {
    REQUIRE(by["a.txt"].entry.xattrs.size() == 1);
    CHECK(by["a.txt"].entry.xattrs[0] == std::pair<std::string, std::string>{"user.note", "hi"});
  } else {
    if (test::in_ci()) FAIL("user xattrs unsupported on CI's filesystem; xattr walking not exercised");
    MESSAGE("skipped: user xattrs unsupported here; xattr walking not exercised");
  }
  CHECK_THROWS_AS(tar_of_tree(d.path() / "missing"), Error);
}

TEST_CASE("add_tree records device nodes and foreign owners (root)") {
  REQUIRE_ROOT();
  TempDir d;
  REQUIRE(::mknod((d.path() / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  test::write_text_file(d.path() / "owned", "x");
  REQUIRE(::chown((d.path() / "owned").c_str(), 1234, 5678) == 0);
  auto got = read_tar(tar_of_tree(d.path()));
  REQUIRE(got.size() == 2);
  CHECK(got[0].entry.type == TarType::Char);
  CHECK(got[0].entry.dev_major == 1);
  CHECK(got[0].entry.dev_minor == 3);
  CHECK(got[1].entry.uid == 1234);
  CHECK(got[1].entry.gid == 5678);
}

namespace {
struct Recorder : BoundaryListener {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cuts;  // (offset, fingerprint)
  BufferSink* out = nullptr;
  void boundary(std::uint64_t fp) override { cuts.emplace_back(out->str().size(), fp); }
};
}  // namespace

TEST_CASE("boundaries: after each entry and every chunk of a large file; fingerprints depend on the path only") {
  auto run = [](const std::string& content) {
    BufferSink out;
    Recorder rec;
    rec.out = &out;
    TarWriter w(out, TarWriterOptions{.chunk_bytes = 1u << 20, .listener = &rec});
    w.add(TarEntry{.path = "small"});
    MemorySource src(content);
    w.add(TarEntry{.path = "big", .size = static_cast<std::int64_t>(content.size())}, &src);
    w.finish();
    return rec.cuts;
  };
  auto a = run(std::string((3u << 20) + 5, 'a'));
  REQUIRE(a.size() == 1 + 3 + 1);  // small, 3 chunk cuts inside big, end of big
  CHECK(a[0].first == 512);
  CHECK(a[1].first == 512 + 512 + (1u << 20));
  CHECK(a[4].first % 512 == 0);
  auto b = run(std::string((3u << 20) + 700, 'b'));
  REQUIRE(b.size() == a.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].second == b[i].second);
  CHECK(a[0].second != a[4].second);
}

namespace {
struct KnownRecorder : BoundaryListener {
  struct Run {
    std::uint64_t at, offset, size;
    Digest content;
  };
  std::vector<Run> runs;
  BufferSink* out = nullptr;
  void boundary(std::uint64_t) override {}
  void known_content(const Digest& d, std::uint64_t offset, std::uint64_t size) override {
    runs.push_back(Run{out->str().size(), offset, size, d});
  }
};
}  // namespace

TEST_CASE("add_file with a content digest announces exactly where the file's bytes go") {
  TempDir t;
  std::string content = test::random_bytes((2u << 20) + 333, 5);
  const auto path = t.path() / "f";
  test::write_text_file(path, content);
  BufferSink out;
  KnownRecorder rec;
  rec.out = &out;
  Digest d = Digest::of(content);
  TarWriter w(out, TarWriterOptions{.chunk_bytes = 1u << 20, .listener = &rec});
  w.add(TarEntry{.path = "first", .size = 3}, std::make_unique<MemorySource>("abc").get());
  UniqueFd fd = open_file(path, O_RDONLY);
  w.add_file(TarEntry{.path = "f", .size = static_cast<std::int64_t>(content.size())}, fd.get(), &d);
  UniqueFd again = open_file(path, O_RDONLY);
  w.add_file(TarEntry{.path = "g", .size = static_cast<std::int64_t>(content.size())}, again.get());  // no digest: no runs
  w.finish();
  REQUIRE(rec.runs.size() >= 3);  // read in pieces, at least one per chunk
  std::uint64_t next = 0;
  for (const auto& r : rec.runs) {
    CHECK(r.content == d);
    CHECK(r.offset == next);
    CHECK(out.str().substr(r.at, r.size) == content.substr(r.offset, r.size));
    next += r.size;
  }
  CHECK(next == content.size());
}
