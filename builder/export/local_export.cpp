#include "builder/export/local_export.h"

#include "builder/export/staged_dir.h"
#include "oci/base/fs.h"
#include "oci/base/owner.h"
#include "oci/sinks.h"
#include "oci/tar_reader.h"
#include "oci/tar_writer.h"
#include "overlay/applier.h"
#include "overlay/override_stat.h"

namespace cbuild::builder {

namespace fs = std::filesystem;

namespace {

void flatten(const oci::LayoutStore& store, const std::vector<oci::Descriptor>& layers, const fs::path& root) {
  for (const auto& l : layers) {
    oci::TarReader reader(store.open(l.digest), "layer " + l.digest.str());
    overlay::apply_layer(reader, root, overlay::ApplyOptions{.mode = overlay::ApplyMode::Flatten});
  }
}

// A rootless flatten leaves placeholders for what a user namespace cannot write
// (overlay/override_stat.h); the tar holds what they stand for, as a root export would.
void read_placeholder(oci::TarEntry& e) {
  std::optional<overlay::OverrideStat> o;
  for (const auto& [key, value] : e.xattrs)
    if (key == overlay::kOverrideStatXattr) o = overlay::parse_override_stat_or_throw(value, e.path);
  std::erase_if(e.xattrs, [](const auto& kv) { return overlay::is_reserved_xattr(kv.first); });
  if (o) overlay::apply_override(e, *o);
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
  tar.add_tree(scratch.path(), read_placeholder);
  tar.finish();
}

}  // namespace cbuild::builder
