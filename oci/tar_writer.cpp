#include "oci/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <vector>

#include "oci/base/cancel.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/internal/handles.h"

namespace cbuild::oci {
namespace {

struct EntryFree {
  void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};

constexpr std::size_t kReadBuf = 1u << 20;

std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// A fingerprint of the entry's identity only (its path), so cut decisions survive changes of
// content, size or mtime and insertions of other entries.
std::uint64_t path_fingerprint(std::string_view path) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : path) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

std::string tar_writer_id() { return std::string("pax-restricted-1 ") + archive_version_string(); }

std::int64_t parse_source_date_epoch(std::string_view value, std::string_view origin) {
  std::int64_t out = 0;
  // from_chars, unlike strtoll/stoll, takes no leading space or '+' and reports trailing bytes.
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (value.empty() || ec != std::errc() || p != value.data() + value.size() || out < 0)
    throw Error(ErrorKind::InvalidArgument,
                std::string(origin) + " " + quote(value) + ": not a number of seconds (a non-negative integer)");
  return out;
}

std::optional<std::int64_t> source_date_epoch_from_env() {
  const char* v = std::getenv("SOURCE_DATE_EPOCH");
  if (!v || !*v) return std::nullopt;
  return parse_source_date_epoch(v, "environment variable SOURCE_DATE_EPOCH");
}

struct TarWriter::Impl {
  ByteSink& out;
  TarWriterOptions options;
  internal::ArchiveWritePtr a;
  std::exception_ptr sink_error;
  std::uint64_t bytes = 0, entries = 0;
  bool finished = false;
  std::unique_ptr<char[]> buf;  // kReadBuf bytes once a file has data; not zero-filled (page faults)

  Impl(ByteSink& o, TarWriterOptions opt) : out(o), options(opt), a(archive_write_new()) {
    if (!a) throw Error(ErrorKind::ResourceExhausted, "tar writer: cannot allocate libarchive handle");
    check(archive_write_set_format_pax_restricted(a.get()), "set format");
    // SCHILY.xattr.* only, as Go's archive/tar and BuildKit write them.
    archive_write_set_options(a.get(), "xattrheader=SCHILY");
    // Unblocked: bytes go straight to the sink; the archive ends after the two zero blocks.
    check(archive_write_set_bytes_per_block(a.get(), 0), "set block size");
    check(archive_write_open(a.get(), this, nullptr, &Impl::on_write, nullptr), "open");
  }

  static la_ssize_t on_write(archive*, void* self, const void* data, size_t size) {
    auto* d = static_cast<Impl*>(self);
    // Exceptions must not cross libarchive's C frames: keep it and rethrow after the call.
    try {
      d->out.write(data, size);
      d->bytes += size;
      return static_cast<la_ssize_t>(size);
    } catch (...) {
      d->sink_error = std::current_exception();
      return -1;
    }
  }

  void check(int rc, std::string_view op, std::string_view path = {}) {
    if (sink_error) std::rethrow_exception(sink_error);
    if (rc >= ARCHIVE_WARN) return;
    std::string msg = "tar writer: " + std::string(op);
    if (!path.empty()) msg += " " + quote(path);
    const char* err = archive_error_string(a.get());
    throw Error(ErrorKind::Internal, msg + ": " + (err ? err : "libarchive error"));
  }

  void header(const TarEntry& e) {
    if (finished) throw Error(ErrorKind::FailedPrecondition, "tar writer: add after finish");
    if (e.path.empty() || e.path.front() == '/' || e.path.back() == '/')
      throw Error(ErrorKind::InvalidArgument, "tar writer: malformed entry path " + quote(e.path));
    if (e.type == TarType::File && e.size < 0)
      throw Error(ErrorKind::InvalidArgument, "tar writer: negative size for " + quote(e.path));
    std::unique_ptr<archive_entry, EntryFree> ae(archive_entry_new());
    archive_entry_copy_pathname(ae.get(), e.path.c_str());
    unsigned ftype = AE_IFREG;
    switch (e.type) {
      case TarType::File: case TarType::Hardlink: ftype = AE_IFREG; break;
      case TarType::Dir: ftype = AE_IFDIR; break;
      case TarType::Symlink: ftype = AE_IFLNK; break;
      case TarType::Char: ftype = AE_IFCHR; break;
      case TarType::Block: ftype = AE_IFBLK; break;
      case TarType::Fifo: ftype = AE_IFIFO; break;
    }
    archive_entry_set_filetype(ae.get(), ftype);
    archive_entry_set_perm(ae.get(), e.mode & 07777);
    archive_entry_set_uid(ae.get(), e.uid);
    archive_entry_set_gid(ae.get(), e.gid);
    if (!e.uname.empty()) archive_entry_copy_uname(ae.get(), e.uname.c_str());
    if (!e.gname.empty()) archive_entry_copy_gname(ae.get(), e.gname.c_str());
    std::int64_t mtime = e.mtime_sec;
    if (options.clamp_mtime && mtime > *options.clamp_mtime) mtime = *options.clamp_mtime;
    // Whole seconds only: sub-second times would force a PAX record per entry.
    archive_entry_set_mtime(ae.get(), mtime, 0);
    archive_entry_set_size(ae.get(), e.type == TarType::File ? e.size : 0);
    if (e.type == TarType::Symlink) {
      if (e.link_target.empty()) throw Error(ErrorKind::InvalidArgument, "tar writer: symlink without target " + quote(e.path));
      archive_entry_copy_symlink(ae.get(), e.link_target.c_str());
    }
    if (e.type == TarType::Hardlink) {
      if (e.link_target.empty()) throw Error(ErrorKind::InvalidArgument, "tar writer: hardlink without target " + quote(e.path));
      archive_entry_copy_hardlink(ae.get(), e.link_target.c_str());
    }
    if (e.type == TarType::Char || e.type == TarType::Block) {
      archive_entry_set_rdevmajor(ae.get(), e.dev_major);
      archive_entry_set_rdevminor(ae.get(), e.dev_minor);
    }
    auto xattrs = e.xattrs;
    std::sort(xattrs.begin(), xattrs.end());
    for (const auto& [name, value] : xattrs)
      archive_entry_xattr_add_entry(ae.get(), name.c_str(), value.data(), value.size());
    check(archive_write_header(a.get(), ae.get()), "write header", e.path);
  }

  void end_entry(const TarEntry& e) {
    check(archive_write_finish_entry(a.get()), "finish entry", e.path);
    ++entries;
    if (options.listener) options.listener->boundary(mix64(path_fingerprint(e.path)));
  }

  // Writes exactly e.size bytes from `next` (a reader returning 0 at EOF), offering chunk
  // boundaries every options.chunk_bytes of data.
  template <class ReadFn>
  void data(const TarEntry& e, ReadFn&& next, const Digest* content = nullptr) {
    if (!buf) buf.reset(new char[kReadBuf]);
    std::uint64_t remaining = static_cast<std::uint64_t>(e.size);
    std::uint64_t done = 0, chunk = options.chunk_bytes;
    std::uint64_t fp = path_fingerprint(e.path);
    while (remaining > 0) {
      check_cancelled();  // per buffer: a layer holding one huge file still stops on Ctrl-C
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, kReadBuf));
      if (chunk) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, chunk - done % chunk));
      // Read straight into the sink's buffer when it offers one (a framed compressor does).
      char* dst = buf.get();
      if (options.listener) {
        std::span<std::byte> room = options.listener->write_room(want);
        if (!room.empty()) {
          dst = reinterpret_cast<char*>(room.data());
          want = room.size();
        }
      }
      std::size_t n = next(dst, want);
      if (n == 0)
        throw Error(ErrorKind::DataLoss, "tar writer: " + quote(e.path) + " has fewer bytes than its size " +
                                             std::to_string(e.size) + " (changed while being read?)");
      if (content && options.listener) options.listener->known_content(*content, done, n);
      std::uint64_t before = bytes;
      la_ssize_t w = archive_write_data(a.get(), dst, n);
      if (w < 0 || static_cast<std::size_t>(w) != n) check(ARCHIVE_FATAL, "write data", e.path);
      // known_content() describes "the next n bytes": that holds only while libarchive passes
      // data straight through (unblocked output), which is checked rather than assumed.
      if (content && bytes != before + n)
        throw Error(ErrorKind::Internal, "tar writer: libarchive did not pass the data of " + quote(e.path) + " straight through");
      remaining -= n;
      done += n;
      if (chunk && done % chunk == 0 && remaining > 0 && options.listener)
        options.listener->boundary(mix64(fp ^ mix64(done / chunk)));
    }
  }

  void finish() {
    if (finished) return;
    finished = true;
    check(archive_write_close(a.get()), "close");
    out.finish();
  }

  // ---- directory walking ----
  std::map<std::pair<dev_t, ino_t>, std::string> links;

  static std::vector<std::pair<std::string, std::string>> read_xattrs(int dirfd, const std::string& name,
                                                                      const std::string& rel) {
    std::string p = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
    std::vector<std::pair<std::string, std::string>> out;
    std::string names;
    for (;;) {
      ssize_t n = ::llistxattr(p.c_str(), nullptr, 0);
      if (n < 0) {
        if (errno == ENOTSUP || errno == ENODATA) return out;
        throw_errno("llistxattr", rel);
      }
      if (n == 0) return out;
      names.resize(static_cast<std::size_t>(n));
      n = ::llistxattr(p.c_str(), names.data(), names.size());
      if (n >= 0) {
        names.resize(static_cast<std::size_t>(n));
        break;
      }
      if (errno != ERANGE) throw_errno("llistxattr", rel);
    }
    for (std::size_t i = 0; i < names.size();) {
      std::string key(names.c_str() + i);
      i += key.size() + 1;
      if (key.empty()) continue;
      std::string value;
      for (;;) {
        ssize_t n = ::lgetxattr(p.c_str(), key.c_str(), nullptr, 0);
        if (n < 0) {
          if (errno == ENODATA) break;
          throw_errno("lgetxattr " + key, rel);
        }
        value.resize(static_cast<std::size_t>(n));
        n = ::lgetxattr(p.c_str(), key.c_str(), value.data(), value.size());
        if (n >= 0) {
          value.resize(static_cast<std::size_t>(n));
          out.emplace_back(key, value);
          break;
        }
        if (errno != ERANGE) throw_errno("lgetxattr " + key, rel);
      }
    }
    return out;
  }

  TreeEntryHook adjust;  // while add_tree() walks

  void walk(int dirfd, const std::string& prefix) {
    std::vector<std::string> names;
    {
      int dupfd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
      if (dupfd < 0) throw_errno("dup", prefix);
      DIR* d = ::fdopendir(dupfd);
      if (!d) {
        ::close(dupfd);
        throw_errno("fdopendir", prefix);
      }
      std::unique_ptr<DIR, int (*)(DIR*)> guard(d, &::closedir);
      errno = 0;
      while (dirent* de = ::readdir(d)) {
        if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) names.emplace_back(de->d_name);
        errno = 0;
      }
      if (errno != 0) throw_errno("readdir", prefix);
    }
    // Byte order (std::string compares as unsigned char), a directory's contents right after it.
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      std::string rel = prefix.empty() ? name : prefix + "/" + name;
      struct stat st{};
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("stat", rel);
      if (S_ISSOCK(st.st_mode)) continue;  // sockets cannot be archived
      TarEntry e;
      e.path = rel;
      e.mode = st.st_mode & 07777;
      e.uid = st.st_uid;
      e.gid = st.st_gid;
      e.mtime_sec = st.st_mtim.tv_sec;
      e.xattrs = read_xattrs(dirfd, name, rel);
      bool stands_for_other = false;  // a regular file the hook turned into another type
      if (adjust && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        e.type = S_ISREG(st.st_mode) ? TarType::File : TarType::Dir;
        e.size = S_ISREG(st.st_mode) ? st.st_size : 0;
        adjust(e);
        stands_for_other = S_ISREG(st.st_mode) && e.type != TarType::File;
      }
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        auto [it, first] = links.try_emplace({st.st_dev, st.st_ino}, rel);
        if (!first) {
          e.type = TarType::Hardlink;
          e.link_target = it->second;
          header(e);
          end_entry(e);
          continue;
        }
      }
      if (stands_for_other) {
        e.size = 0;
        header(e);
        end_entry(e);
      } else if (S_ISREG(st.st_mode)) {
        e.type = TarType::File;
        e.size = st.st_size;
        UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME));
        if (!fd && errno == EPERM) fd.reset(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) throw_errno("open", rel);
        add_file(e, fd.get());
      } else if (S_ISDIR(st.st_mode)) {
        e.type = TarType::Dir;
        header(e);
        end_entry(e);
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) throw_errno("open directory", rel);
        walk(sub.get(), rel);
      } else if (S_ISLNK(st.st_mode)) {
        e.type = TarType::Symlink;
        std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
        for (;;) {
          ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
          if (n < 0) throw_errno("readlink", rel);
          if (static_cast<std::size_t>(n) < target.size()) {
            target.resize(static_cast<std::size_t>(n));
            break;
          }
          target.resize(target.size() * 2);
        }
        e.link_target = target;
        header(e);
        end_entry(e);
      } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
        e.type = S_ISCHR(st.st_mode) ? TarType::Char : S_ISBLK(st.st_mode) ? TarType::Block : TarType::Fifo;
        e.dev_major = major(st.st_rdev);
        e.dev_minor = minor(st.st_rdev);
        header(e);
        end_entry(e);
      }
    }
  }

  void add_file(const TarEntry& e, int fd, const Digest* content = nullptr) {
    header(e);
    // Read-ahead only pays for large files; for small ones it is one more syscall each.
    if (e.size >= (1 << 20)) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    data(e, [&](char* p, std::size_t n) { return read_full(fd, p, n, e.path); }, content);
    end_entry(e);
  }
};

TarWriter::TarWriter(ByteSink& out, TarWriterOptions options) : impl_(std::make_unique<Impl>(out, options)) {}
TarWriter::~TarWriter() = default;

void TarWriter::add(const TarEntry& entry, ByteSource* data) {
  impl_->header(entry);
  if (entry.type == TarType::File && entry.size > 0) {
    if (!data) throw Error(ErrorKind::InvalidArgument, "tar writer: no data for " + quote(entry.path));
    impl_->data(entry, [&](char* p, std::size_t n) {
      std::size_t got = 0;
      while (got < n) {
        std::size_t r = data->read(p + got, n - got);
        if (r == 0) break;
        got += r;
      }
      return got;
    });
  }
  impl_->end_entry(entry);
}

void TarWriter::add_file(const TarEntry& entry, int fd, const Digest* content) {
  if (entry.type != TarType::File) throw Error(ErrorKind::InvalidArgument, "tar writer: add_file of a non-file " + quote(entry.path));
  impl_->add_file(entry, fd, content);
}

void TarWriter::add_tree(const std::filesystem::path& root, const TreeEntryHook& adjust) {
  UniqueFd fd = open_file(root, O_RDONLY | O_DIRECTORY);
  impl_->adjust = adjust;
  try {
    impl_->walk(fd.get(), "");
  } catch (...) {
    impl_->adjust = nullptr;
    throw;
  }
  impl_->adjust = nullptr;
}

void TarWriter::finish() { impl_->finish(); }
std::uint64_t TarWriter::bytes_written() const noexcept { return impl_->bytes; }
std::uint64_t TarWriter::entries_written() const noexcept { return impl_->entries; }

}  // namespace cbuild::oci
