// ADD's archive detection and extraction (builder/steps/add_archive.h).
#include "builder/steps/add_archive.h"

#include <fcntl.h>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "oci/base/fs.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {
void sh(const std::string& cmd) {
  auto r = test::run_command({"/bin/sh", "-c", cmd});
  REQUIRE_MESSAGE(r.exit_code == 0, cmd << ": " << r.err);
}
}  // namespace

TEST_CASE("tar archives are recognised through every compression docker accepts, and extracted") {
  TempDir t;
  fs::path p = t.path();
  fs::create_directories(p / "src/dir");
  std::ofstream(p / "src/dir/f") << "content";
  std::ofstream(p / "plain.txt") << "just text, not a tar";
  sh("cd " + p.string() + " && tar -cf a.tar -C src dir && gzip -kn a.tar && bzip2 -k a.tar && xz -k a.tar && zstd -q a.tar"
     " && gzip -kn plain.txt");
  for (const char* name : {"a.tar", "a.tar.gz", "a.tar.bz2", "a.tar.xz", "a.tar.zst"}) {
    CAPTURE(name);
    UniqueFd fd = open_file(p / name, O_RDONLY);
    CHECK(builder::is_tar_archive(fd.get()));
    fs::path dest = p / (std::string("out-") + name);
    fs::create_directories(dest);
    builder::extract_tar_archive(fd.get(), dest, name);
    CHECK(read_file(dest / "dir/f") == "content");
  }
  for (const char* name : {"plain.txt", "plain.txt.gz"}) {
    CAPTURE(name);
    UniqueFd fd = open_file(p / name, O_RDONLY);
    CHECK_FALSE(builder::is_tar_archive(fd.get()));
  }
}

TEST_CASE("an archive cannot write outside its destination") {
  TempDir t;
  fs::path p = t.path();
  // A tar whose entry climbs out with "../" (GNU tar keeps it with -P).
  fs::create_directories(p / "a/b");
  std::ofstream(p / "a/escape") << "x";
  sh("cd " + p.string() + "/a/b && tar -Pcf ../../evil.tar ../escape");
  UniqueFd fd = open_file(p / "evil.tar", O_RDONLY);
  REQUIRE(builder::is_tar_archive(fd.get()));
  fs::create_directories(p / "dest/in");
  builder::extract_tar_archive(fd.get(), p / "dest/in", "evil.tar");
  CHECK(fs::exists(p / "dest/in/escape"));
  CHECK_FALSE(fs::exists(p / "dest/escape"));
}
