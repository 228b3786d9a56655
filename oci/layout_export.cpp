// save_layout(): the export walk of docker_archive.cpp, written into a directory.
#include <fcntl.h>
#include <sys/stat.h>

#include <set>
#include <vector>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/docker_archive.h"
#include "oci/internal/export_writer.h"

namespace cbuild::oci {

namespace {

namespace fs = std::filesystem;

class DirExportWriter final : public internal::ExportWriter {
 public:
  explicit DirExportWriter(const fs::path& dir) : dir_(dir), dir_fd_(open_file(dir, O_RDONLY | O_DIRECTORY)) {}

  void dir(const std::string& name) override {
    std::string rel = name.substr(0, name.find_last_not_of('/') + 1);
    if (::mkdirat(dir_fd_.get(), rel.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir", (dir_ / rel).string());
  }
  void file(const std::string& name, std::string_view data) override {
    UniqueFd fd = create(name);
    write_all(fd.get(), data.data(), data.size(), (dir_ / name).string());
  }
  void blob(const LayoutStore& store, const Descriptor& d) override {
    std::string name = "blobs/" + d.digest.algorithm() + "/" + d.digest.hex();
    if (!written_.insert(name).second) return;
    dir("blobs/" + d.digest.algorithm() + "/");
    UniqueFd fd = create(name);
    auto src = store.open(d.digest);
    std::vector<std::byte> buf(1 << 20);
    for (;;) {
      std::size_t n = src->read(buf.data(), buf.size());
      if (n == 0) break;
      write_all(fd.get(), buf.data(), n, (dir_ / name).string());
    }
  }

 private:
  UniqueFd create(const std::string& name) {
    // O_NOFOLLOW: the directory is cbuild's own staging area, but a leftover symlink must
    // never redirect a write elsewhere.
    return open_at(dir_fd_.get(), name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
  }

  fs::path dir_;
  UniqueFd dir_fd_;
  std::set<std::string> written_;
};

}  // namespace

void save_layout(const LayoutStore& store, const std::vector<ArchiveImage>& images, const fs::path& dir) {
  DirExportWriter w(dir);
  internal::write_images(w, store, images, ArchiveFormat::Oci);
}

}  // namespace cbuild::oci
