// origin_fetcher() — the blob fetcher (oci::LayoutStore::set_blob_fetcher) that brings a blob a
// store lacks from the registries BlobOrigins records for it: the image a build pulled lazily,
// a --cache-from hit tagged without its layers. Each recorded "REGISTRY/REPO" is tried, most
// recent first, with the user's credentials (connect.h) and `tls_verify`: a HEAD for the size,
// then the blob streamed into the store by the Puller, verified by digest and size on commit.
// A digest with no recorded origin is not fetched (false: the store reports it absent). A
// registry that cannot be reached is not tried again for its other repositories. When every
// origin fails, one Error (the kind of the last failure) names the blob and each origin tried
// with why it failed, so `run`, `unpack`, a RUN step or a push that needed it says what to fix.
// One transport per registry, shared by the threads of the store. Thread-safe.
#pragma once

#include <functional>
#include <string>

#include "oci/layout_store.h"

namespace cbuild::registry {

// `log`: one line per fetched blob (may be empty).
oci::LayoutStore::BlobFetcher origin_fetcher(oci::LayoutStore& store, bool tls_verify,
                                             std::function<void(const std::string&)> log = {});

}  // namespace cbuild::registry
