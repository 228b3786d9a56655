// libFuzzer target over what reads an untrusted layer blob: TarReader (gzip/zstd/plain
// detection, libarchive, entry normalisation) and the Applier with its inside-the-root path
// resolution (overlay/safe_path.h), in both apply modes, into a fresh directory per input.
// Every input must end in a result or a cbuild::Error. After each input the root's parent must
// hold nothing but the root and an empty sibling directory, and every applied path must
// resolve inside the root: a write outside it is a bug even when nothing crashes. Built and
// run by fuzz/run.sh.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "oci/base/error.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "overlay/applier.h"
#include "overlay/safe_path.h"

namespace fs = std::filesystem;
namespace oci = cbuild::oci;
namespace ov = cbuild::overlay;

namespace {

// Data past this per entry (and per input) is read but not written, so that a small
// compressed input cannot fill the disk; the reader still sees every byte.
constexpr std::int64_t kMaxWrittenPerInput = 1 << 20;

struct Dirs {
  fs::path base, root, beside;
};

const Dirs& dirs() {
  static const Dirs d = [] {
    std::string tmpl = (fs::current_path() / "tree.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    Dirs out{tmpl, fs::path(tmpl) / "root", fs::path(tmpl) / "beside"};
    fs::create_directories(out.beside);
    return out;
  }();
  return d;
}

// Throws away an entry's data (an entry left unread is skipped by next()).
void drain(oci::ByteSource& src) {
  char buf[16384];
  while (src.read(buf, sizeof buf) != 0) {
  }
}

void check_contained(int root_fd, const std::string& path) {
  try {
    cbuild::UniqueFd fd = ov::open_in_root(root_fd, path, O_PATH | O_NOFOLLOW);
    // Throws Internal (not caught below) when the resolved path is outside the root.
    (void)ov::path_in_root(root_fd, fd.get(), path);
  } catch (const cbuild::Error& e) {
    if (e.kind() == cbuild::ErrorKind::Internal) throw;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Dirs& d = dirs();
  std::string_view blob(reinterpret_cast<const char*>(data), size);
  fs::remove_all(d.root);
  fs::create_directory(d.root);
  ov::ApplyOptions opts;
  opts.mode = size % 2 ? ov::ApplyMode::Overlay : ov::ApplyMode::Flatten;
  opts.xattr_namespace = size % 4 < 2 ? cbuild::overlay::XattrNamespace::User : cbuild::overlay::XattrNamespace::Trusted;
  std::vector<std::string> applied;
  try {
    oci::TarReader reader(std::make_unique<oci::MemorySource>(blob), "fuzz layer");
    ov::Applier applier(d.root, opts);
    std::int64_t written = 0;
    while (auto e = reader.next()) {
      bool file = e->type == oci::TarType::File;
      if (file && (e->size > kMaxWrittenPerInput || written + e->size > kMaxWrittenPerInput)) {
        drain(reader.data());
        continue;
      }
      written += file ? e->size : 0;
      try {
        applier.apply(*e, file ? &reader.data() : nullptr);
        applied.push_back(e->path);
      } catch (const cbuild::Error&) {
        // Refused entries (hardlink out of the layer…) are expected; keep reading the layer.
      }
    }
    applier.finish();
  } catch (const cbuild::Error& e) {
    if (e.kind() == cbuild::ErrorKind::Internal) {
      std::fprintf(stderr, "internal error: %s\n", e.what());
      std::abort();
    }
  }
  int root_fd = ::open(d.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) std::abort();
  cbuild::UniqueFd root(root_fd);
  for (const std::string& p : applied) check_contained(root.get(), p);
  bool outside = !fs::is_empty(d.beside);
  for (const auto& e : fs::directory_iterator(d.base))
    outside = outside || (e.path() != d.root && e.path() != d.beside);
  if (outside) {
    std::fprintf(stderr, "the layer wrote outside its root\n");
    std::abort();
  }
  return 0;
}
