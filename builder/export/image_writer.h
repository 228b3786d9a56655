// Writing a built image into the store: the config (validated through oci::ImageConfig, so it
// passes the OCI schema), then the manifest (OCI, or Docker schema 2 with --format docker),
// both durable before the caller tags them. Layer blobs are already in the store.
#pragma once

#include <string>

#include "builder/plan/build_options.h"
#include "builder/steps/stage_runner.h"
#include "oci/descriptor.h"
#include "oci/store.h"

namespace cbuild::builder {

struct WrittenImage {
  oci::Descriptor manifest;  // media type, digest, size of the manifest blob
  oci::Digest config;        // the image ID
  std::string manifest_bytes;
  std::string config_bytes;
};

WrittenImage write_image(oci::Ingester& store, const ImageState& state, ImageFormat format);

}  // namespace cbuild::builder
