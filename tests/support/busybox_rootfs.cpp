#include "tests/support/busybox_rootfs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/layer_writer.h"
#include "oci/sinks.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;

namespace cbuild::test {

namespace {

void put(const fs::path& p, const std::string& text, mode_t mode = 0644) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  ::chmod(p.c_str(), mode);
}

void zero_times(const fs::path& root) {
  struct timespec ts[2] = {{0, 0}, {0, 0}};
  for (auto& e : fs::recursive_directory_iterator(root)) ::utimensat(AT_FDCWD, e.path().c_str(), ts, AT_SYMLINK_NOFOLLOW);
  ::utimensat(AT_FDCWD, root.c_str(), ts, 0);
}

}  // namespace

void make_busybox_rootfs(const fs::path& root) {
  if (!fs::exists("/bin/busybox")) FAIL("busybox-static is not installed (scripts/install-deps.sh installs it)");
  for (const char* d : {"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "dev", "proc", "sys", "var", "tmp"})
    fs::create_directories(root / d);
  ::chmod((root / "tmp").c_str(), 01777);
  ::chmod((root / "root").c_str(), 0700);
  fs::copy_file("/bin/busybox", root / "bin/busybox", fs::copy_options::overwrite_existing);
  ::chmod((root / "bin/busybox").c_str(), 0755);
  fs::copy_file(CBUILD_PROBE_BINARY, root / "bin/probe", fs::copy_options::overwrite_existing);
  ::chmod((root / "bin/probe").c_str(), 0755);
  CommandResult list = run_command({"/bin/busybox", "--list-full"});
  REQUIRE(list.exit_code == 0);
  std::istringstream in(list.out);
  std::string applet;
  while (std::getline(in, applet)) {
    if (applet.empty() || applet == "bin/busybox") continue;
    fs::path target = root / applet;
    if (!fs::exists(target.parent_path()) || fs::exists(fs::symlink_status(target))) continue;
    fs::create_symlink("/bin/busybox", target);
  }
  put(root / "etc/passwd",
      "root:x:0:0:root:/root:/bin/sh\n"
      "app:x:1000:1000:app:/home/app:/bin/sh\n"
      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  put(root / "etc/group", "root:x:0:\napp:x:1000:\nextra:x:1500:app\nnogroup:x:65534:\n");
  zero_times(root);
}

void write_docker_archive(const fs::path& rootfs, const std::string& tag, const fs::path& out) {
  TempDir dir;
  // The layer: an uncompressed tar from the same pipeline cbuild uses.
  class FileIngest final : public oci::Ingest {
   public:
    explicit FileIngest(const fs::path& p) : file_(p), hash_(&file_) {}
    void write(std::span<const std::byte> d) override { hash_.write(d); }
    void finish() override { hash_.finish(); }
    oci::Digest commit(const std::optional<oci::Digest>&, std::optional<std::int64_t>) override {
      finish();
      return hash_.digest();
    }
    std::int64_t bytes_written() const override { return static_cast<std::int64_t>(hash_.bytes()); }

   private:
    oci::FileSink file_;
    oci::HashingSink hash_;
  };
  class OneFile final : public oci::Ingester {
   public:
    explicit OneFile(fs::path p) : p_(std::move(p)) {}
    std::unique_ptr<oci::Ingest> begin_ingest() override { return std::make_unique<FileIngest>(p_); }

   private:
    fs::path p_;
  };
  OneFile ingester(dir.path() / "layer.tar");
  oci::LayerResult layer = oci::write_layer(rootfs, ingester, oci::LayerWriterOptions{.codec = oci::Codec::None});
  nlohmann::json config = {
      {"architecture", "amd64"},
      {"os", "linux"},
      {"created", "1970-01-01T00:00:00Z"},
      {"config", nlohmann::json::object()},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.diff_id.str()}}}},
      {"history", {{{"created", "1970-01-01T00:00:00Z"}, {"created_by", "cbuild test busybox rootfs"}}}}};
  std::string config_text = config.dump();
  std::string config_name = oci::Digest::of(config_text).hex() + ".json";
  write_file_atomic(dir.path() / config_name, config_text);
  nlohmann::json manifest = nlohmann::json::array(
      {{{"Config", config_name}, {"RepoTags", {tag}}, {"Layers", {"layer.tar"}}}});
  write_file_atomic(dir.path() / "manifest.json", manifest.dump());
  CommandResult r = run_command({"tar", "-cf", out.string(), "-C", dir.path().string(), "manifest.json",
                                 config_name, "layer.tar"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
}

}  // namespace cbuild::test
