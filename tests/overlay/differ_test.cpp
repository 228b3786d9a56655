#include "overlay/differ.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"
#include "overlay/active_mount.h"
#include "overlay/applier.h"
#include "overlay/sys/syscalls.h"
#include "overlay/whiteout.h"
#include "tests/overlay/layer_test_util.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using cbuild::Error;
using cbuild::TempDir;
using cbuild::oci::TarEntry;
using cbuild::oci::TarType;
using namespace cbuild::overlay;
using namespace cbuild::test;

namespace {

std::vector<TarEntry> diff_entries(const fs::path& upper, const DiffOptions& opt = {}) {
  std::vector<TarEntry> out;
  walk_diff(upper, opt, [&](const TarEntry& e, int) { out.push_back(e); });
  return out;
}

std::vector<std::string> paths_of(const std::vector<TarEntry>& es) {
  std::vector<std::string> out;
  for (const auto& e : es) out.push_back(e.path);
  return out;
}

const TarEntry* find(const std::vector<TarEntry>& es, const std::string& path) {
  for (const auto& e : es)
    if (e.path == path) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("differ: a changed overlay upper becomes a sorted OCI changeset [root]") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path lower = tmp.path() / "lower", upper = tmp.path() / "upper", work = tmp.path() / "work";
  fs::create_directories(lower);
  fs::create_directories(upper);
  fs::create_directories(work);
  auto base = reader_for(make_tar({dir_item("etc"), file_item("etc/passwd", "root"), file_item("etc/group", "g"),
                                   dir_item("var"), dir_item("var/cache"), file_item("var/cache/x", "x")}));
  apply_layer(*base, lower);

  MountSpec spec{.lowers = {lower.string()}, .upper = upper.string(), .work = work.string()};
  {
    ActiveMount m(spec, tmp.path() / "merged");
    fs::path mp = m.target();
    fs::remove(mp / "etc/group");                           // → whiteout
    fs::remove_all(mp / "var/cache");                       // dir deleted and re-created → opaque
    fs::create_directory(mp / "var/cache");
    write_text(mp / "var/cache/y", "y");
    REQUIRE(::chown((mp / "var/cache").c_str(), 12, 34) == 0);
    REQUIRE(::chmod((mp / "var/cache").c_str(), 02750) == 0);
    write_text(mp / "etc/passwd", "root\nuser");            // copy-up
    write_text(mp / "b-file", "b");
    fs::create_hard_link(mp / "b-file", mp / "a-link");
    fs::create_symlink("/etc/passwd", mp / "pw");
    fs::create_directories(mp / "proc");                    // mount-point stub
    write_text(mp / "etc/hosts", "127.0.0.1 localhost");    // init-layer file
  }
  REQUIRE_FALSE(has_mounts_under(tmp.path()));

  DiffOptions opt;
  opt.exclude = {"proc", "/etc/hosts"};
  auto es = diff_entries(upper, opt);
  CHECK(paths_of(es) == std::vector<std::string>{"a-link", "b-file", "etc", "etc/.wh.group", "etc/passwd", "pw",
                                                 "var", "var/cache", "var/cache/.wh..wh..opq", "var/cache/y"});
  // The first path of a hardlinked pair carries the data, the second links to it.
  CHECK(find(es, "a-link")->type == TarType::File);
  CHECK(find(es, "b-file")->type == TarType::Hardlink);
  CHECK(find(es, "b-file")->link_target == "a-link");
  CHECK(find(es, "etc/.wh.group")->type == TarType::File);
  CHECK(find(es, "etc/.wh.group")->size == 0);
  // The markers' headers are docker's (overlay/whiteout.h): the whiteout 0600 with the device's
  // owner and mtime, the opaque marker the directory's owner and bits less setgid, mtime 0.
  struct stat dev {};
  REQUIRE(::lstat((upper / "etc/group").c_str(), &dev) == 0);
  CHECK(find(es, "etc/.wh.group")->mode == 0600);
  CHECK(find(es, "etc/.wh.group")->uid == 0);
  CHECK(find(es, "etc/.wh.group")->mtime_sec == dev.st_mtim.tv_sec);
  CHECK(find(es, "var/cache/.wh..wh..opq")->mode == 0750);
  CHECK(find(es, "var/cache/.wh..wh..opq")->uid == 12);
  CHECK(find(es, "var/cache/.wh..wh..opq")->gid == 34);
  CHECK(find(es, "var/cache/.wh..wh..opq")->mtime_sec == 0);
  CHECK(find(es, "etc/passwd")->size == 9);
  CHECK(find(es, "pw")->type == TarType::Symlink);
  CHECK(find(es, "pw")->link_target == "/etc/passwd");
  for (const auto& e : es)
    for (const auto& [k, v] : e.xattrs) CHECK_MESSAGE(!is_overlay_private_xattr(k), e.path, " carries ", k);

  // Deterministic: the same upper gives the same bytes.
  auto tar_of = [&] {
    cbuild::oci::BufferSink sink;
    cbuild::oci::TarWriter w(sink);
    write_diff(upper, w, opt);
    w.finish();
    return sink.str();
  };
  std::string t1 = tar_of();
  CHECK(t1 == tar_of());

  // The changeset applied in flatten mode onto the base gives the merged view.
  fs::path flat = tmp.path() / "flat";
  fs::create_directories(flat);
  ApplyOptions fopt;
  fopt.mode = ApplyMode::Flatten;
  auto r0 = reader_for(make_tar({dir_item("etc"), file_item("etc/passwd", "root"), file_item("etc/group", "g"),
                                 dir_item("var"), dir_item("var/cache"), file_item("var/cache/x", "x")}));
  apply_layer(*r0, flat, fopt);
  auto r1 = reader_for(t1);
  apply_layer(*r1, flat, fopt);
  CHECK(read_text(flat / "etc/passwd") == "root\nuser");
  CHECK_FALSE(exists_nofollow(flat / "etc/group"));
  CHECK_FALSE(exists_nofollow(flat / "var/cache/x"));
  CHECK(read_text(flat / "var/cache/y") == "y");
  CHECK_FALSE(exists_nofollow(flat / "etc/hosts"));
  CHECK_FALSE(exists_nofollow(flat / "proc"));

  // strip_for_commit: excluded paths gone, only the opaque marker survives among overlay xattrs.
  strip_for_commit(upper, opt);
  CHECK_FALSE(exists_nofollow(upper / "proc"));
  CHECK_FALSE(exists_nofollow(upper / "etc/hosts"));
  for (const auto& d : fs::recursive_directory_iterator(upper)) {
    for (const auto& k : sys::list_xattrs(AT_FDCWD, d.path().string(), d.path().string()))
      CHECK_MESSAGE((!is_overlay_private_xattr(k) || k == opaque_xattr(XattrNamespace::Trusted)), d.path(), " ", k);
  }
  cbuild::UniqueFd vfd(::open((upper / "var").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  CHECK(is_overlay_opaque(vfd.get(), "cache", XattrNamespace::Trusted, "var/cache"));
  // The committed upper still works as a lower: the whiteout hides, the opaque dir hides.
  fs::create_directories(tmp.path() / "up2");
  fs::create_directories(tmp.path() / "work2");
  MountSpec again{.lowers = {upper.string(), lower.string()}};
  {
    ActiveMount m(again, tmp.path() / "merged2");
    CHECK_FALSE(fs::exists(m.target() / "etc/group"));
    CHECK_FALSE(fs::exists(m.target() / "var/cache/x"));
    CHECK(read_text(m.target() / "var/cache/y") == "y");
  }
  CHECK_FALSE(has_mounts_under(tmp.path()));
}

TEST_CASE("differ: devices, fifos and modes survive; sockets are skipped") {
  REQUIRE_ROOT();
  TempDir tmp;
  fs::path up = tmp.path();
  REQUIRE(::mknod((up / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  REQUIRE(::mkfifo((up / "fifo").c_str(), 0640) == 0);
  write_text(up / "suid", "s");
  REQUIRE(::chown((up / "suid").c_str(), 5, 6) == 0);
  REQUIRE(::chmod((up / "suid").c_str(), 04755) == 0);
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(sock >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sp = (up / "sock").string();
  REQUIRE(sp.size() < sizeof addr.sun_path);
  sp.copy(addr.sun_path, sp.size());
  CHECK(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::close(sock);
  auto es = diff_entries(up);
  REQUIRE(es.size() == 3);
  CHECK(find(es, "sock") == nullptr);
  CHECK(find(es, "null")->type == TarType::Char);
  CHECK(find(es, "null")->dev_major == 1);
  CHECK(find(es, "null")->dev_minor == 3);
  CHECK(find(es, "fifo")->type == TarType::Fifo);
  CHECK(find(es, "fifo")->mode == 0640);
  CHECK(find(es, "suid")->mode == 04755);
  CHECK(find(es, "suid")->uid == 5);
  CHECK(find(es, "suid")->gid == 6);
}

TEST_CASE("differ: a missing upper is a clear error") {
  TempDir tmp;
  CHECK_THROWS_WITH_AS(diff_entries(tmp.path() / "nope"), doctest::Contains("nope"), Error);
}
