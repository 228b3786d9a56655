#include "builder/export/local_export.h"

#include "builder/export/staged_dir.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"
#include "overlay/applier.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

void flatten(const oci::LayoutStore& store, const std::vector<oci::Descriptor>& layers, const fs::path& root) {
  for (const auto& l : layers) {
    oci::TarReader reader(store.open(l.digest), "layer " + l.digest.str());
    overlay::apply_layer(reader, root, overlay::ApplyOptions{.mode = overlay::ApplyMode::Flatten});
  }
}

}  // namespace

void export_local_dir(const oci::LayoutStore& store, const std::vector<oci::Descriptor>& layers, const fs::path& dest) {
  StagedDir staged(dest);
  flatten(store, layers, staged.path());
  staged.commit();
}

void export_local_tar(const oci::LayoutStore& store, const std::vector<oci::Descriptor>& layers, int fd) {
  // Stamped with the owner: the next store opener removes it should this process die.
  TempDir scratch(store.root() / "tmp", "export-" + OwnerStamp::self().str() + "-");
  flatten(store, layers, scratch.path());
  oci::FdSink sink(fd, "stdout");
  oci::TarWriter tar(sink, oci::TarWriterOptions{.chunk_bytes = 0});
  tar.add_tree(scratch.path());
  tar.finish();
}

}  // namespace cbuild::builder
