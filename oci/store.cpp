#include "oci/store.h"

namespace cbuild::oci {

std::string BlobProvider::read_blob(const Digest& digest, std::size_t max_size) const {
  auto src = open(digest);
  return read_all(*src, max_size);
}

Digest Ingester::put_blob(std::string_view bytes) {
  auto ing = begin_ingest();
  ing->write(bytes);
  ing->finish();
  return ing->commit(Digest::of(bytes), static_cast<std::int64_t>(bytes.size()));
}

}  // namespace cbuild::oci
