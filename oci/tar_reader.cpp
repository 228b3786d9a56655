#include "oci/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include <exception>
#include <vector>

#include "oci/base/error.h"
#include "oci/compression.h"
#include "oci/internal/handles.h"
#include "oci/read_ahead.h"

namespace cbuild::oci {
namespace {

constexpr std::size_t kBlock = 1u << 20;

// "./a//b/" → "a/b"; "." components dropped; ".." kept (resolved by the applier, in its root).
std::string normalize(std::string_view p) {
  std::string out;
  std::size_t i = 0;
  while (i <= p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view part = p.substr(i, j - i);
    if (!part.empty() && part != ".") {
      if (!out.empty()) out.push_back('/');
      out.append(part);
    }
    i = j + 1;
  }
  return out;
}

// Hashes the decompressed stream on its way to libarchive (views pass through uncopied) and
// checks it against the DiffID at EOF.
class DiffIdCheck final : public ByteSource {
 public:
  DiffIdCheck(std::unique_ptr<ByteSource> inner, Digest expected, std::string what)
      : inner_(std::move(inner)), expected_(std::move(expected)), what_(std::move(what)) {}
  std::size_t read(std::span<std::byte> out) override { return check(out.first(inner_->read(out))).size(); }
  std::span<const std::byte> read_view(std::span<std::byte> scratch) override { return check(inner_->read_view(scratch)); }

 private:
  std::span<const std::byte> check(std::span<const std::byte> v) {
    if (!v.empty()) {
      hash_.update(v.data(), v.size());
      return v;
    }
    if (!done_) {
      done_ = true;
      Digest got = hash_.finish();
      if (got != expected_)
        throw Error(ErrorKind::DataLoss, what_ + ": its uncompressed content has diff_id " + got.str() +
                                             ", but the image config says " + expected_.str());
    }
    return v;
  }
  std::unique_ptr<ByteSource> inner_;
  Digest expected_;
  std::string what_;
  Sha256 hash_;
  bool done_ = false;
};

std::unique_ptr<ByteSource> decompressed(std::unique_ptr<ByteSource> s, const std::string& what,
                                         std::optional<Digest> diff_id) {
  auto plain = open_decompressed(std::move(s), what);
  if (!diff_id) return plain;
  // Inflating and hashing run a few chunks ahead on a thread of their own, so the check costs
  // the applier (tar parsing, file writes) little wall time on a machine with a spare core.
  return std::make_unique<ReadAheadSource>(std::make_unique<DiffIdCheck>(std::move(plain), std::move(*diff_id), what));
}

}  // namespace

struct TarReader::Impl : ByteSource {
  std::unique_ptr<ByteSource> src;  // decompressed stream
  std::string what;
  internal::ArchiveReadPtr a;
  std::vector<std::byte> buf;
  std::exception_ptr src_error;
  bool at_end = false;
  bool in_file = false;

  Impl(std::unique_ptr<ByteSource> s, std::string w, std::optional<Digest> diff_id)
      : src(decompressed(std::move(s), w, std::move(diff_id))), what(std::move(w)), a(archive_read_new()), buf(kBlock) {
    if (!a) throw Error(ErrorKind::ResourceExhausted, what + ": cannot allocate libarchive handle");
    archive_read_support_format_tar(a.get());
    archive_read_support_format_gnutar(a.get());
    if (archive_read_open(a.get(), this, nullptr, &Impl::on_read, nullptr) != ARCHIVE_OK) fail("open");
  }

  static la_ssize_t on_read(archive*, void* self, const void** out) {
    auto* d = static_cast<Impl*>(self);
    try {
      // libarchive keeps a block only until its next read callback, as long as a view lives.
      std::span<const std::byte> v = d->src->read_view(d->buf);
      *out = v.data();
      return static_cast<la_ssize_t>(v.size());
    } catch (...) {
      d->src_error = std::current_exception();
      return -1;
    }
  }

  [[noreturn]] void fail(std::string_view op) {
    if (src_error) std::rethrow_exception(src_error);
    const char* err = archive_error_string(a.get());
    throw Error(ErrorKind::DataLoss, what + ": corrupt tar (" + std::string(op) + ": " + (err ? err : "libarchive error") + ")");
  }

  std::optional<TarEntry> next() {
    in_file = false;
    if (at_end) return std::nullopt;
    for (;;) {
      archive_entry* ae = nullptr;
      int rc = archive_read_next_header(a.get(), &ae);
      if (rc == ARCHIVE_EOF) {
        at_end = true;
        // Drain so that a verifying source below sees EOF and checks the digest.
        while (!src->read_view(buf).empty()) {
        }
        return std::nullopt;
      }
      if (rc < ARCHIVE_WARN) fail("read header");
      TarEntry e;
      const char* raw = archive_entry_pathname(ae);
      std::string_view rawpath = raw ? raw : "";
      e.path = normalize(rawpath);
      const char* hl = archive_entry_hardlink(ae);
      unsigned ft = archive_entry_filetype(ae);
      if (hl) {
        e.type = TarType::Hardlink;
        e.link_target = normalize(hl);
        if (e.link_target.empty()) throw Error(ErrorKind::InvalidArgument, what + ": hardlink " + quote(rawpath) + " has an empty target");
      } else {
        switch (ft) {
          case AE_IFREG: e.type = TarType::File; break;
          case AE_IFDIR: e.type = TarType::Dir; break;
          case AE_IFLNK: e.type = TarType::Symlink; break;
          case AE_IFCHR: e.type = TarType::Char; break;
          case AE_IFBLK: e.type = TarType::Block; break;
          case AE_IFIFO: e.type = TarType::Fifo; break;
          default:
            throw Error(ErrorKind::InvalidArgument, what + ": entry " + quote(rawpath) + " has an unsupported type");
        }
      }
      if (e.path.empty()) {
        if (e.type == TarType::Dir) continue;  // the root itself ("./")
        throw Error(ErrorKind::InvalidArgument, what + ": entry with an empty path " + quote(rawpath));
      }
      e.mode = static_cast<std::uint32_t>(archive_entry_perm(ae)) & 07777;
      e.uid = static_cast<std::uint32_t>(archive_entry_uid(ae));
      e.gid = static_cast<std::uint32_t>(archive_entry_gid(ae));
      if (const char* u = archive_entry_uname(ae)) e.uname = u;
      if (const char* g = archive_entry_gname(ae)) e.gname = g;
      e.mtime_sec = archive_entry_mtime(ae);
      e.mtime_nsec = static_cast<std::uint32_t>(archive_entry_mtime_nsec(ae));
      if (e.type == TarType::File) {
        if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0)
          throw Error(ErrorKind::InvalidArgument, what + ": entry " + quote(e.path) + " has no valid size");
        e.size = archive_entry_size(ae);
        in_file = true;
      }
      if (e.type == TarType::Symlink) {
        const char* t = archive_entry_symlink(ae);
        e.link_target = t ? t : "";
      }
      if (e.type == TarType::Char || e.type == TarType::Block) {
        e.dev_major = static_cast<std::uint32_t>(archive_entry_rdevmajor(ae));
        e.dev_minor = static_cast<std::uint32_t>(archive_entry_rdevminor(ae));
      }
      if (archive_entry_xattr_reset(ae) > 0) {
        const char* name = nullptr;
        const void* value = nullptr;
        std::size_t size = 0;
        while (archive_entry_xattr_next(ae, &name, &value, &size) == ARCHIVE_OK)
          e.xattrs.emplace_back(name, std::string(static_cast<const char*>(value), size));
      }
      return e;
    }
  }

  std::size_t read(std::span<std::byte> out) override {
    if (!in_file || out.empty()) return 0;
    la_ssize_t n = archive_read_data(a.get(), out.data(), out.size());
    if (n < 0) fail("read data");
    return static_cast<std::size_t>(n);
  }
};

TarReader::TarReader(std::unique_ptr<ByteSource> source, std::string what, std::optional<Digest> diff_id)
    : impl_(std::make_unique<Impl>(std::move(source), std::move(what), std::move(diff_id))) {}
TarReader::~TarReader() = default;
std::optional<TarEntry> TarReader::next() { return impl_->next(); }
ByteSource& TarReader::data() { return *impl_; }

}  // namespace cbuild::oci
