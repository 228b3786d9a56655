// Small ByteSink / ByteSource building blocks for the layer pipeline.
//
//   HashingSink  — SHA-256 (and byte count) of everything written; forwards to an optional inner sink.
//   CountingSink — byte count; forwards to an optional inner sink.
//   TeeSink      — writes every chunk to two sinks.
//   FdSink       — writes to a borrowed fd; FileSink creates a file and owns its fd.
//   BufferSink   — collects into a std::string (tests, small documents).
//   MemorySource / FdSource — the matching sources; FileSource reads a regular file from the
//   page cache where it is cached and with O_DIRECT where not (oci/base/cold_read.h).
//
// finish() finishes the wrapped sinks too (stream.h contract) and is idempotent. Sinks that
// wrap another do not own it (the caller keeps it alive). None is thread-safe.
// Errors: FdSink/FileSink throw cbuild::Error from the failing syscall, naming the path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "oci/base/cold_read.h"
#include "oci/base/unique_fd.h"
#include "oci/digest.h"
#include "oci/stream.h"

namespace cbuild::oci {

class HashingSink : public ByteSink {
 public:
  explicit HashingSink(ByteSink* inner = nullptr) : inner_(inner) {}
  void write(std::span<const std::byte> data) override;
  void finish() override;
  // The digest of all bytes written; valid after finish() (calls finish() if needed).
  const Digest& digest();
  std::uint64_t bytes() const noexcept { return bytes_; }
  using ByteSink::write;

 private:
  ByteSink* inner_;
  Sha256 hash_;
  Digest digest_;
  std::uint64_t bytes_ = 0;
  bool finished_ = false;
};

class CountingSink : public ByteSink {
 public:
  explicit CountingSink(ByteSink* inner = nullptr) : inner_(inner) {}
  void write(std::span<const std::byte> data) override;
  void finish() override;
  std::uint64_t bytes() const noexcept { return bytes_; }
  using ByteSink::write;

 private:
  ByteSink* inner_;
  std::uint64_t bytes_ = 0;
  bool finished_ = false;
};

class TeeSink : public ByteSink {
 public:
  TeeSink(ByteSink& a, ByteSink& b) : a_(a), b_(b) {}
  void write(std::span<const std::byte> data) override;
  void finish() override;
  using ByteSink::write;

 private:
  ByteSink& a_;
  ByteSink& b_;
  bool finished_ = false;
};

// Writes to a borrowed fd (not closed, not fsynced). `what` names it in errors.
class FdSink : public ByteSink {
 public:
  FdSink(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  void write(std::span<const std::byte> data) override;
  using ByteSink::write;

 private:
  int fd_;
  std::string what_;
};

// Creates (truncates) `path` and writes to it; finish() closes it (no fsync: callers that need
// durability use the store's Ingest).
class FileSink : public ByteSink {
 public:
  explicit FileSink(const std::filesystem::path& path, int mode = 0644);
  void write(std::span<const std::byte> data) override;
  void finish() override;
  using ByteSink::write;

 private:
  std::string path_;
  UniqueFd fd_;
};

class BufferSink : public ByteSink {
 public:
  void write(std::span<const std::byte> data) override {
    buf_.append(reinterpret_cast<const char*>(data.data()), data.size());
  }
  void finish() override { finished_ = true; }
  bool finished() const noexcept { return finished_; }
  const std::string& str() const noexcept { return buf_; }
  std::string take() noexcept { return std::move(buf_); }
  using ByteSink::write;

 private:
  std::string buf_;
  bool finished_ = false;
};

// Reads from a borrowed buffer (which must outlive the source).
class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::string_view data) : data_(data) {}
  std::size_t read(std::span<std::byte> out) override;
  using ByteSource::read;

 private:
  std::string_view data_;
};

// Reads from an owned fd (e.g. an opened blob). `what` names it in errors.
class FdSource : public ByteSource {
 public:
  FdSource(UniqueFd fd, std::string what) : fd_(std::move(fd)), what_(std::move(what)) {}
  static std::unique_ptr<FdSource> open(const std::filesystem::path& path);
  std::size_t read(std::span<std::byte> out) override;
  using ByteSource::read;

 private:
  UniqueFd fd_;
  std::string what_;
};

// A regular file read from its start, sequentially (pread, so the fd's offset is not used).
class FileSource : public ByteSource {
 public:
  FileSource(UniqueFd fd, std::string what) : fd_(std::move(fd)), reader_(fd_.get(), std::move(what)) {}
  std::size_t read(std::span<std::byte> out) override;
  using ByteSource::read;
  const ColdAwareReader& reader() const noexcept { return reader_; }

 private:
  UniqueFd fd_;
  ColdAwareReader reader_;
  std::uint64_t pos_ = 0;
};

}  // namespace cbuild::oci
