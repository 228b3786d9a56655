#include "oci/tee_ingest.h"

#include "oci/digest.h"

namespace cbuild::oci {

namespace {

class TeeIngest : public Ingest {
 public:
  TeeIngest(std::unique_ptr<Ingest> inner, ByteSink& copy) : inner_(std::move(inner)), copy_(copy) {}
  void write(std::span<const std::byte> data) override {
    inner_->write(data);
    copy_.write(data);
  }
  using ByteSink::write;
  void finish() override { inner_->finish(); }
  Digest commit(const std::optional<Digest>& expected, std::optional<std::int64_t> expected_size) override {
    return inner_->commit(expected, expected_size);
  }
  std::int64_t bytes_written() const override { return inner_->bytes_written(); }

 protected:
  std::unique_ptr<Ingest> inner_;
  ByteSink& copy_;
};

class ResumableTeeIngest final : public TeeIngest, public ResumableHash {
 public:
  ResumableTeeIngest(std::unique_ptr<Ingest> inner, ResumableHash& hash, ByteSink& copy)
      : TeeIngest(std::move(inner), copy), hash_(hash) {}
  Sha256::State hash_state() const override { return hash_.hash_state(); }
  void write_hashed(std::span<const std::byte> data, const Sha256::State& after) override {
    hash_.write_hashed(data, after);
    copy_.write(data);
  }

 private:
  ResumableHash& hash_;  // inner_, seen as one
};

}  // namespace

std::unique_ptr<Ingest> tee_ingest(std::unique_ptr<Ingest> inner, ByteSink& copy) {
  if (auto* hash = dynamic_cast<ResumableHash*>(inner.get()))
    return std::make_unique<ResumableTeeIngest>(std::move(inner), *hash, copy);
  return std::make_unique<TeeIngest>(std::move(inner), copy);
}

}  // namespace cbuild::oci
