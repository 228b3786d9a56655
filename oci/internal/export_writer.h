// The one walk over images that every export format shares (docker_archive.cpp): which blobs an
// image reaches, index.json with its name annotations, docker's manifest.json/repositories.
// Where the entries go is an ExportWriter: a tar stream (save_archive) or a directory
// (save_layout, layout_export.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"
#include "oci/docker_archive.h"
#include "oci/layout_store.h"

namespace cbuild::oci::internal {

class ExportWriter {
 public:
  virtual ~ExportWriter() = default;
  // A directory entry; `name` ends with '/'.
  virtual void dir(const std::string& name) = 0;
  virtual void file(const std::string& name, std::string_view data) = 0;
  // blobs/<alg>/<hex> for `d`, copied from the store through its verified reads. Writing the
  // same blob twice writes it once.
  virtual void blob(const LayoutStore& store, const Descriptor& d) = 0;
};

// Writes oci-layout, index.json and every blob of `images` (and manifest.json + repositories
// for ArchiveFormat::Docker) into `out`. Throws NotFound for a blob the store lacks.
void write_images(ExportWriter& out, const LayoutStore& store, const std::vector<ArchiveImage>& images,
                  ArchiveFormat format);

}  // namespace cbuild::oci::internal
