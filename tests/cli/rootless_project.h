// RootlessProject — a BuildProject that a test's unprivileged user builds rootless, beside a
// copy of its store that root builds the same Dockerfile into, for comparing image digests.
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "oci/layout_store.h"
#include "tests/support/build_project.h"
#include "tests/support/unprivileged_user.h"

namespace cbuild::test {

// The project belongs to `user` (a copy of the store stays root's for the reference build);
// TempDir's parent must be traversable by the user.
struct RootlessProject {
  BuildProject p{"cbuild-test-busybox:1"};
  std::filesystem::path root_store = p.dir.path() / "root-store";

  explicit RootlessProject(const UnprivilegedUser& user,
                           const std::function<void(const std::filesystem::path&)>& more_bases = {}) {
    if (more_bases) more_bases(p.root);
    std::filesystem::copy(p.root, root_store, std::filesystem::copy_options::recursive);
    std::filesystem::permissions(p.dir.path(), std::filesystem::perms(0755));
    user.own(p.root);
    user.own(p.ctx);
    user.own(p.tmp);
  }
  std::vector<std::string> args(const std::filesystem::path& store, const std::string& tag) const {
    return {"--root", store.string(), "--progress=plain", "-t", tag, p.ctx.string()};
  }
  std::vector<std::string> env() const { return {"SOURCE_DATE_EPOCH=1700000000", "TMPDIR=" + p.tmp.string()}; }
  CommandResult build_as_root(const std::string& tag) const {
    auto e = env();
    return run_cbuild(args(root_store, tag), {}, e);
  }
  CommandResult build_as(const UnprivilegedUser& user, const std::string& tag) const {
    return user.run_cbuild(args(p.root, tag), env());
  }
  static std::string digest(const std::filesystem::path& store, const std::string& tag) {
    auto s = oci::LayoutStore::open(store);
    auto d = s->resolve("docker.io/library/" + tag);
    REQUIRE_MESSAGE(d, "no tag " << tag << " in " << store);
    return d->digest.str();
  }
};

}  // namespace cbuild::test
