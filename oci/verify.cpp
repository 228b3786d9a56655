#include "oci/verify.h"

#include "oci/base/error.h"
#include "oci/read_ahead.h"

namespace cbuild::oci {

VerifyingSource::VerifyingSource(std::unique_ptr<ByteSource> inner, Digest expected,
                                 std::optional<std::int64_t> expected_size, std::string what,
                                 std::uint64_t max_size)
    : inner_(std::move(inner)),
      expected_(std::move(expected)),
      expected_size_(expected_size),
      what_(std::move(what)),
      max_size_(max_size) {
  if (expected_.algorithm() != "sha256")
    throw Error(ErrorKind::InvalidArgument,
                "verify " + what_ + ": unsupported digest algorithm " + quote(expected_.algorithm()));
  if (expected_size_ && *expected_size_ < 0)
    throw Error(ErrorKind::InvalidArgument, "verify " + what_ + ": negative size");
}

void VerifyingSource::fail(std::string message) {
  failed_ = std::move(message);
  throw Error(ErrorKind::DataLoss, *failed_);
}

std::size_t VerifyingSource::read(std::span<std::byte> out) {
  if (failed_) throw Error(ErrorKind::DataLoss, *failed_);
  if (verified_ || out.empty()) return 0;
  std::size_t n = inner_->read(out);
  if (n > 0) {
    count_ += n;
    if (expected_size_ && count_ > static_cast<std::uint64_t>(*expected_size_))
      fail(what_ + ": more than the expected " + std::to_string(*expected_size_) + " bytes");
    if (count_ > max_size_) fail(what_ + ": larger than the limit of " + std::to_string(max_size_) + " bytes");
    hash_.update(out.data(), n);
    return n;
  }
  if (expected_size_ && count_ != static_cast<std::uint64_t>(*expected_size_))
    fail(what_ + ": truncated: got " + std::to_string(count_) + " of " + std::to_string(*expected_size_) +
         " bytes");
  Digest got = hash_.finish();
  if (got != expected_) fail(what_ + ": digest mismatch: expected " + expected_.str() + ", got " + got.str());
  verified_ = true;
  return 0;
}

std::unique_ptr<ByteSource> open_verified(std::unique_ptr<ByteSource> inner, Digest expected, std::int64_t size,
                                          std::string what) {
  auto verified = std::make_unique<VerifyingSource>(std::move(inner), std::move(expected), size, std::move(what));
  if (size < kReadAheadThreshold) return verified;
  return std::make_unique<ReadAheadSource>(std::move(verified));
}

}  // namespace cbuild::oci
