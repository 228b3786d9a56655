#include "oci/ingest.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "oci/base/error.h"
#include "oci/base/owner.h"
#include "oci/base/fs.h"
#include "oci/internal/blob_file_writer.h"

namespace cbuild::oci {
namespace {

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<unsigned long>(::getpid())};
  static const char* hex = "0123456789abcdef";
  std::string s;
  auto v = rng();
  for (int i = 0; i < 16; ++i, v >>= 4) s += hex[v & 15];
  return s;
}

}  // namespace

LayoutIngest::LayoutIngest(const std::filesystem::path& tmp_dir, Publish publish) : publish_(std::move(publish)) {
  for (int attempt = 0;; ++attempt) {
    // The owner stamp lets the next store opener remove it if this process dies mid-write.
    path_ = tmp_dir / ("ingest-" + OwnerStamp::self().str() + "-" + random_suffix());
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      fd_.reset(fd);
      break;
    }
    if (errno != EEXIST || attempt > 8) throw_errno("begin ingest: create", path_.string());
  }
  // Marks the ingest as live for gc (which only removes temp files it can lock itself).
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    abandon();
    throw_errno("begin ingest: lock", path_.string(), err);
  }
  file_ = std::make_unique<internal::BlobFileWriter>(fd_.get(), "ingest " + path_.string());
}

LayoutIngest::~LayoutIngest() { abandon(); }

void LayoutIngest::abandon() noexcept {
  if (done_) return;
  done_ = true;
  file_.reset();  // stops its writer thread before the fd closes
  if (!path_.empty()) ::unlink(path_.c_str());
  fd_.reset();
}

bool LayoutIngest::direct_io() const noexcept { return file_ && file_->direct(); }

void LayoutIngest::check_open() const {
  if (done_ || finished_) throw Error(ErrorKind::Internal, "ingest " + quote(path_.string()) + ": write after finish or commit");
}

void LayoutIngest::store(std::span<const std::byte> data) {
  written_ += data.size();
  try {
    file_->write(data.data(), data.size());
  } catch (...) {
    abandon();
    throw;
  }
}

void LayoutIngest::write(std::span<const std::byte> data) {
  check_open();
  hash_.update(data.data(), data.size());
  store(data);
}

void LayoutIngest::write_hashed(std::span<const std::byte> data, const Sha256::State& after) {
  check_open();
  if (after.bytes != written_ + data.size())
    throw Error(ErrorKind::Internal, "ingest " + quote(path_.string()) + ": resumed hash state is not at the end of the bytes written");
  hash_.restore(after);
  store(data);
}

void LayoutIngest::finish() {
  if (finished_ || done_) return;
  try {
    file_->finish();
  } catch (...) {
    abandon();
    throw;
  }
  finished_ = true;
}

Digest LayoutIngest::commit(const std::optional<Digest>& expected, std::optional<std::int64_t> expected_size) {
  if (done_) throw Error(ErrorKind::Internal, "ingest " + quote(path_.string()) + ": commit after commit or abort");
  finish();
  Digest actual = hash_.finish();
  auto size = static_cast<std::int64_t>(written_);
  if (expected_size && *expected_size != size) {
    abandon();
    throw Error(ErrorKind::DataLoss, "ingest of " + (expected ? expected->str() : actual.str()) + ": wrote " +
                                         std::to_string(size) + " bytes, expected " + std::to_string(*expected_size));
  }
  if (expected && !expected->is_empty() && *expected != actual) {
    abandon();
    throw Error(ErrorKind::DataLoss, "ingest: content digest " + actual.str() + " does not match expected " + expected->str());
  }
  try {
    fsync_fd(fd_.get(), "ingest " + path_.string());
    publish_(fd_.get(), path_, actual, size);
  } catch (...) {
    abandon();
    throw;
  }
  done_ = true;
  ::unlink(path_.c_str());  // publish renamed it away (ENOENT) or the blob already existed
  fd_.reset();
  return actual;
}

}  // namespace cbuild::oci
