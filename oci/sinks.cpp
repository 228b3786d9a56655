#include "oci/sinks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "oci/base/error.h"
#include "oci/base/fs.h"

namespace cbuild::oci {

void HashingSink::write(std::span<const std::byte> data) {
  hash_.update(data.data(), data.size());
  bytes_ += data.size();
  if (inner_) inner_->write(data);
}

void HashingSink::finish() {
  if (finished_) return;
  finished_ = true;
  digest_ = hash_.finish();
  if (inner_) inner_->finish();
}

const Digest& HashingSink::digest() {
  finish();
  return digest_;
}

void CountingSink::write(std::span<const std::byte> data) {
  bytes_ += data.size();
  if (inner_) inner_->write(data);
}

void CountingSink::finish() {
  if (finished_) return;
  finished_ = true;
  if (inner_) inner_->finish();
}

void TeeSink::write(std::span<const std::byte> data) {
  a_.write(data);
  b_.write(data);
}

void TeeSink::finish() {
  if (finished_) return;
  finished_ = true;
  a_.finish();
  b_.finish();
}

void FdSink::write(std::span<const std::byte> data) { write_all(fd_, data.data(), data.size(), what_); }

FileSink::FileSink(const std::filesystem::path& path, int mode)
    : path_(path.string()), fd_(open_file(path, O_WRONLY | O_CREAT | O_TRUNC, mode)) {}

void FileSink::write(std::span<const std::byte> data) {
  if (!fd_) throw Error(ErrorKind::FailedPrecondition, "write to finished file " + quote(path_));
  write_all(fd_.get(), data.data(), data.size(), path_);
}

void FileSink::finish() {
  if (!fd_) return;
  int fd = fd_.release();
  if (::close(fd) != 0 && errno != EINTR) throw_errno("close", path_);
}

std::size_t MemorySource::read(std::span<std::byte> out) {
  std::size_t n = std::min(out.size(), data_.size());
  std::memcpy(out.data(), data_.data(), n);
  data_.remove_prefix(n);
  return n;
}

std::unique_ptr<FdSource> FdSource::open(const std::filesystem::path& path) {
  return std::make_unique<FdSource>(open_file(path, O_RDONLY), path.string());
}

std::size_t FdSource::read(std::span<std::byte> out) {
  for (;;) {
    ssize_t n = ::read(fd_.get(), out.data(), out.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_errno("read", what_);
  }
}

std::size_t FileSource::read(std::span<std::byte> out) {
  std::size_t n = reader_.pread(out.data(), out.size(), pos_);
  pos_ += n;
  return n;
}

}  // namespace cbuild::oci
