// tee_ingest(): the store's ingest stays the one that commits, the copy sees every byte in
// order — also those a writer hands over with their hash already known (write_hashed) — and
// the tee resumes hashes exactly when the wrapped ingest does.
#include "oci/tee_ingest.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "oci/base/fs.h"
#include "oci/digest.h"
#include "oci/layout_store.h"
#include "oci/sinks.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {

// An ingest that cannot resume a hash: it only counts.
class PlainIngest : public Ingest {
 public:
  void write(std::span<const std::byte> data) override { bytes_ += static_cast<std::int64_t>(data.size()); }
  using ByteSink::write;
  Digest commit(const std::optional<Digest>&, std::optional<std::int64_t>) override { return Digest::of(""); }
  std::int64_t bytes_written() const override { return bytes_; }

 private:
  std::int64_t bytes_ = 0;
};

}  // namespace

TEST_CASE("tee ingest: the store commits what the copy saw, hashed or handed over with its hash") {
  TempDir t;
  auto store = LayoutStore::open(t.path() / "store");
  BufferSink copy;
  std::unique_ptr<Ingest> tee = tee_ingest(store->begin_ingest(), copy);
  auto* resumable = dynamic_cast<ResumableHash*>(tee.get());
  REQUIRE(resumable != nullptr);

  tee->write(std::string_view("first part, "));
  Sha256 h;
  h.restore(resumable->hash_state());
  const std::string second = "second part with a hash already known";
  h.update(second);
  resumable->write_hashed(std::as_bytes(std::span(second.data(), second.size())), h.state());
  tee->write(std::string_view(", end"));

  const std::string all = "first part, " + second + ", end";
  CHECK(copy.str() == all);
  CHECK(tee->bytes_written() == static_cast<std::int64_t>(all.size()));
  const Digest d = tee->commit(Digest::of(all), static_cast<std::int64_t>(all.size()));
  CHECK(d == Digest::of(all));
  CHECK(store->read_blob(d) == all);
}

TEST_CASE("tee ingest: over an ingest that cannot resume a hash, neither can the tee") {
  BufferSink copy;
  std::unique_ptr<Ingest> tee = tee_ingest(std::make_unique<PlainIngest>(), copy);
  CHECK(dynamic_cast<ResumableHash*>(tee.get()) == nullptr);
  tee->write(std::string_view("abc"));
  CHECK(copy.str() == "abc");
  CHECK(tee->bytes_written() == 3);
}
