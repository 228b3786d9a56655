// DiskTarget — the disk writer of COPY/ADD: performs the landings copy_rules.h decides in a
// directory (a mounted rootfs), every path resolved inside it (overlay/safe_path.h), so a
// symlink of the image cannot redirect a write to the host. Not thread-safe; throws
// cbuild::Error naming the path.
#pragma once

#include <optional>
#include <string>

#include "builder/steps/copy_rules.h"
#include "overlay/safe_path.h"

namespace cbuild::builder {

class DiskTarget final : public CopyTarget {
 public:
  explicit DiskTarget(int dest_root) : dest_(dest_root) {}
  Entry at(const std::string& path) override;
  bool is_dir(const std::string& path) override;
  std::string resolve(const std::string& path) override;
  void land(const Landing& l) override;

 private:
  // The parent of `path`, opened (missing parents made) once for at() and land() of it.
  overlay::ParentAndLeaf& parent(const std::string& path);

  int dest_;
  std::optional<overlay::ParentAndLeaf> parent_;
};

}  // namespace cbuild::builder
