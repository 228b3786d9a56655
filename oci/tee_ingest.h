// tee_ingest() — an Ingest that also hands every byte written to it, in order, to a second
// sink (a layer's compressed bytes to an upload running beside the build: registry-client's
// BlobStream). The store's ingest stays the one that counts: commit(), bytes_written() and any
// error are its own; the copy is told nothing of the commit (the caller knows the digest).
// When the wrapped ingest's hash can resume (ResumableHash), so can the tee, so a writer that
// reuses cached frames behaves as without it.
#pragma once

#include <memory>

#include "oci/store.h"
#include "oci/stream.h"

namespace cbuild::oci {

// `inner` is owned; `copy` must outlive the result.
std::unique_ptr<Ingest> tee_ingest(std::unique_ptr<Ingest> inner, ByteSink& copy);

}  // namespace cbuild::oci
