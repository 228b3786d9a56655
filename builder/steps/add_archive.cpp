#include "builder/steps/add_archive.h"

#include <archive.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "oci/base/error.h"
#include "oci/sinks.h"
#include "oci/stream.h"
#include "oci/tar_reader.h"
#include "overlay/applier.h"

namespace cbuild::builder {

namespace {

struct ArchiveFree {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};

// The decompressed bytes of any format libarchive's filters know (gzip, bzip2, xz, zstd, …),
// or the bytes themselves when uncompressed.
class DecompressedSource final : public oci::ByteSource {
 public:
  DecompressedSource(int fd, std::string shown) : a_(archive_read_new()), shown_(std::move(shown)) {
    if (!a_) throw Error(ErrorKind::ResourceExhausted, "ADD " + quote(shown_) + ": cannot allocate libarchive");
    archive_read_support_filter_all(a_.get());
    archive_read_support_format_raw(a_.get());
    if (archive_read_open_fd(a_.get(), fd, 1 << 16) != ARCHIVE_OK) fail();
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a_.get(), &e);
    if (rc == ARCHIVE_EOF) {
      eof_ = true;
    } else if (rc < ARCHIVE_WARN) {
      fail();
    }
  }
  std::size_t read(std::span<std::byte> out) override {
    if (eof_ || out.empty()) return 0;
    la_ssize_t n = archive_read_data(a_.get(), out.data(), out.size());
    if (n < 0) fail();
    if (n == 0) eof_ = true;
    return static_cast<std::size_t>(n);
  }
  using ByteSource::read;

 private:
  [[noreturn]] void fail() {
    const char* e = archive_error_string(a_.get());
    throw Error(ErrorKind::DataLoss, "ADD " + quote(shown_) + ": cannot read archive: " + (e ? e : "unknown error"));
  }
  std::unique_ptr<archive, ArchiveFree> a_;
  std::string shown_;
  bool eof_ = false;
};

bool valid_tar_header(const unsigned char* h) {
  // The checksum field (148, 8 bytes, octal) equals the sum of the header with it as spaces.
  unsigned long stored = 0;
  bool digits = false;
  for (int i = 148; i < 156; ++i) {
    if (h[i] >= '0' && h[i] <= '7') {
      stored = stored * 8 + (h[i] - '0');
      digits = true;
    } else if (h[i] == ' ' || h[i] == '\0') {
      if (digits) break;
    } else {
      return false;
    }
  }
  if (!digits) return false;
  unsigned long sum = 0;
  for (int i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
  return sum == stored && h[0] != '\0';
}

}  // namespace

bool is_tar_archive(int fd) {
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) throw_errno("dup", "ADD source");
  // libarchive reads through its own fd position: use a separate open file description.
  std::string proc = "/proc/self/fd/" + std::to_string(dup);
  int own = ::open(proc.c_str(), O_RDONLY | O_CLOEXEC);
  ::close(dup);
  if (own < 0) throw_errno("reopen", "ADD source");
  UniqueFd holder(own);
  unsigned char head[512];
  try {
    DecompressedSource src(own, "source");
    std::size_t got = 0;
    while (got < sizeof head) {
      std::size_t n = src.read(std::span<std::byte>(reinterpret_cast<std::byte*>(head) + got, sizeof head - got));
      if (n == 0) break;
      got += n;
    }
    return got == sizeof head && valid_tar_header(head);
  } catch (const Error&) {
    return false;  // not something libarchive can read: a plain file
  }
}

void extract_tar_archive(int fd, const std::filesystem::path& dest_dir, const std::string& shown) {
  if (::lseek(fd, 0, SEEK_SET) < 0) throw_errno("seek", shown);
  auto src = std::make_unique<DecompressedSource>(fd, shown);
  oci::TarReader reader(std::move(src), "ADD " + shown);
  overlay::apply_layer(reader, dest_dir, overlay::ApplyOptions{.mode = overlay::ApplyMode::Flatten});
}

}  // namespace cbuild::builder
