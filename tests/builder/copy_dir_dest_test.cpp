// COPY of a directory's contents onto its destination, compared with docker build (BuildKit's
// fsutil copy): an existing destination directory keeps its own mode and owner while the
// directories below it take the source's (and --chown's); a destination the copy creates is
// 0755, owned by --chown's user or root, whatever the source directory's mode or --chmod.
// Found by the next.js case (COPY --from --chown ... ./ into a root-owned WORKDIR).
#include <doctest/doctest.h>
#include <sys/stat.h>

#include "tests/support/build_project.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

using namespace cbuild;

TEST_CASE("COPY of a directory onto an existing or a new destination directory, as docker does") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("dir/sub/f", "f\n");
  p.file("dir/g", "g\n");
  ::chmod((p.ctx / "dir").c_str(), 0700);
  ::chmod((p.ctx / "dir/sub").c_str(), 0705);
  p.file("Dockerfile", "FROM " + p.base + " AS src\n"
         "RUN mkdir -p /srcdir/sub && echo f > /srcdir/sub/f && chown -R 5:6 /srcdir && chmod 0700 /srcdir\n"
         "FROM " + p.base + "\n"
         "RUN mkdir -p /opt/sub /opt2 && chmod 0751 /opt /opt/sub && chown 5:6 /opt2\n"
         "COPY --chown=1000:1000 dir /opt\n"
         "COPY dir /opt2/\n"
         "COPY --chmod=0700 dir /opt3\n"
         "COPY --chown=1000:1000 dir /opt4/\n"
         "COPY --from=src /srcdir /opt5\n"
         "WORKDIR /app\n"
         "COPY --from=src --chown=1000:1000 /srcdir ./\n");
  test::check_same_as_docker(p, "copy-dir-dest:1");
}
