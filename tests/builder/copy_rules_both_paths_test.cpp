// Every COPY fixture through both writers of a COPY/ADD step: the disk writer (CopyStep::write
// into a mounted overlay, diffed by run_fs_step) and the streamed layer (CopyStep::write into a
// LayerTree, run_streamed_step). They consume the same rules (copy_rules.h), so for the same
// parent, sources and flags the two layers must hold the same entries: path, type, mode,
// owner, link target, content and mtime, in the same order — or fail with the same message.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <functional>
#include <string>
#include <vector>

#include "builder/steps/copy_step.h"
#include "builder/steps/fs_step.h"
#include "builder/steps/layer_tree.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/digest.h"
#include "oci/tar_reader.h"
#include "tests/support/blob_map.h"
#include "tests/support/image_tree.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;
using namespace cbuild::builder;

namespace {

// The step's "now" (what both writers give the directories they create or change) and the
// layer's SOURCE_DATE_EPOCH: sources are older, so their mtimes reach the layer unclamped.
constexpr std::int64_t kNow = 1'000'000'000;

// A version-2 file capability: cap_net_raw (bit 13) permitted and effective.
constexpr char kCap[20] = {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

void stamp(const fs::path& p, std::int64_t sec) {
  struct timespec ts[2] = {{sec, 123}, {sec, 123}};
  ::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

void put(const fs::path& p, const std::string& content, mode_t mode, std::int64_t mtime) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << content;
  ::chmod(p.c_str(), mode);
  stamp(p, mtime);
}

// One line per layer entry, in layer order: everything a tree entry is made of.
std::string layer_listing(const test::BlobMap& store, const oci::Digest& d) {
  oci::TarReader r(store.open(d));
  std::string out;
  std::vector<std::byte> buf(1 << 16);
  while (auto e = r.next()) {
    std::string content;
    if (e->type == oci::TarType::File) {
      oci::Sha256 h;
      while (std::size_t n = r.data().read(buf)) h.update(buf.data(), n);
      content = h.finish().str();
    }
    std::string xattrs;
    for (const auto& [k, v] : e->xattrs) xattrs += " " + k + "=" + v;
    out += e->path + " type=" + std::to_string(static_cast<int>(e->type)) + " mode=" + std::to_string(e->mode) +
           " owner=" + std::to_string(e->uid) + ":" + std::to_string(e->gid) + " mtime=" + std::to_string(e->mtime_sec) +
           "." + std::to_string(e->mtime_nsec) + " size=" + std::to_string(e->size) + " link=" + e->link_target +
           " dev=" + std::to_string(e->dev_major) + "," + std::to_string(e->dev_minor) + " " + content + xattrs + "\n";
  }
  return out;
}

struct Case {
  const char* name;
  CopyOp op;
  std::string dest;  // as the stage runner passes it: absolute, WORKDIR applied, "/" kept
  bool keep_owner = false;                 // COPY --from a stage or image
  bool dockerignore = false;               // the context's .dockerignore applies
  const char* source_root = "context";     // "context", "heredoc" (COPY <<EOF files) or "stage"
  std::vector<std::string> expect = {};    // line prefixes the layer must hold
  const char* error = nullptr;             // both fail, with a message holding this
};

struct Fixture {
  TempDir root, context, heredoc, stage;
  test::BlobMap store;
  overlay::SnapshotStore snaps{root.path()};
  FsContext ctx{.store = store, .snapshots = snaps, .layer_options = {}};
  LayerStack base;

  Fixture() {
    ctx.layer_options.clamp_mtime = kNow;
    // The image the copy lands on: names for --chown, an existing directory with its own owner
    // and mode, symlinks (to a directory, to a file, dangling, relative), a file, nested dirs.
    FsStepResult b = run_fs_step(ctx, {}, [](const fs::path& m) {
      put(m / "etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n", 0644, 100);
      put(m / "etc/group", "root:x:0:\napp:x:1001:\n", 0644, 100);
      put(m / "etc/app.conf", "conf", 0640, 100);
      fs::create_directories(m / "srv/sub");
      fs::create_directories(m / "srv/isdir");
      put(m / "srv/old", "old", 0644, 200);
      fs::create_symlink("sub", m / "srv/to-sub");
      fs::create_symlink("/srv", m / "link");
      fs::create_symlink("app.conf", m / "etc/link.conf");
      fs::create_symlink("nowhere/deeper", m / "dangling");
      put(m / "replace", "file", 0644, 300);
      fs::create_directories(m / "opt/a/b");
      ::chown((m / "srv").c_str(), 5, 6);
      ::chmod((m / "srv").c_str(), 0750);
      ::chown((m / "opt/a").c_str(), 7, 8);
      for (const char* d : {"opt/a/b", "opt/a", "opt", "srv/isdir", "srv/sub", "srv", "etc"}) stamp(m / d, 400);
    });
    base = LayerStack{{b.layer.descriptor}, {b.layer.diff_id}};

    const fs::path c = context.path();
    put(c / "top.txt", "top", 0644, 1000);
    put(c / "two.txt", "two", 0600, 1100);
    put(c / "sub", "a file named like a directory of the image", 0644, 1200);
    put(c / "tree/a.txt", "a", 0755, 2000);
    put(c / "tree/b.txt", "b", 0644, 2100);
    put(c / "tree/secret", "s", 0600, 3000);
    put(c / "tree/suid", "x", 04755, 4000);
    put(c / "tree/nested/deep/leaf", "leaf", 0640, 5000);
    put(c / "tree/nested/note.md", "md", 0644, 5100);
    put(c / "tree/skip.log", "log", 0644, 6000);
    fs::create_directories(c / "tree/empty");
    ::chmod((c / "tree/empty").c_str(), 0700);
    fs::create_symlink("a.txt", c / "tree/rel-link");
    fs::create_symlink("/etc/passwd", c / "tree/abs-link");
    fs::create_symlink("missing/target", c / "tree/dangling");
    fs::create_hard_link(c / "tree/a.txt", c / "tree/hard");
    fs::create_hard_link(c / "tree/nested/deep/leaf", c / "tree/nested/leaf-too");
    ::mkfifo((c / "tree/fifo").c_str(), 0644);
    stamp(c / "tree/fifo", 6100);
    // Device nodes land as empty files; a context's socket too (copy_rules.h).
    REQUIRE(::mknod((c / "tree/devnull").c_str(), S_IFCHR | 0640, makedev(1, 3)) == 0);
    ::chmod((c / "tree/devnull").c_str(), 0640);
    stamp(c / "tree/devnull", 6150);
    REQUIRE(::mknod((c / "tree/sock").c_str(), S_IFSOCK | 0640, 0) == 0);
    ::chmod((c / "tree/sock").c_str(), 0640);
    fs::create_symlink("tree/b.txt", c / "top-link");
    fs::create_symlink("tree", c / "dir-link");
    put(c / "lnk/link/f", "below a name the image has as a symlink", 0644, 6200);
    put(c / "opt/a/x.txt", "x", 0644, 6300);
    ::chmod((c / "opt/a").c_str(), 0711);
    fs::create_directories(c / "lnk2");
    fs::create_symlink("elsewhere", c / "lnk2/to-sub");
    for (const char* d : {"tree/nested/deep", "tree/nested", "tree/empty", "tree", "lnk/link", "lnk", "lnk2", "opt/a", "opt"}) stamp(c / d, 7000);
    for (const char* l : {"tree/rel-link", "tree/abs-link", "tree/dangling", "top-link", "dir-link", "lnk2/to-sub"}) stamp(c / l, 7100);

    // COPY <<EOF files: the stage runner writes them 0644 into a folder of their own.
    put(heredoc.path() / "script.sh", "#!/bin/sh\necho hi\n", 0644, 8000);
    put(heredoc.path() / "conf", "k=v\n", 0644, 8000);

    // Another stage's rootfs (COPY --from): owners kept.
    put(stage.path() / "app/bin/tool", "tool", 0755, 9000);
    put(stage.path() / "app/etc/cfg", "cfg", 0600, 9100);
    ::chown((stage.path() / "app/bin/tool").c_str(), 1000, 1001);
    ::chown((stage.path() / "app/etc").c_str(), 33, 33);
    fs::create_symlink("bin/tool", stage.path() / "app/tool-link");
    ::lchown((stage.path() / "app/tool-link").c_str(), 44, 45);
    for (const char* d : {"app/bin", "app/etc", "app"}) stamp(stage.path() / d, 9200);
  }

  // A file of `root` with a file capability (cap_net_raw+ep) and a user xattr, and a second
  // name for it: what a stage's `setcap` leaves.
  static void capped(const fs::path& root, const std::string& rel) {
    put(root / rel, "capped", 0755, 9300);
    REQUIRE(::setxattr((root / rel).c_str(), "security.capability", kCap, sizeof kCap, 0) == 0);
    REQUIRE(::setxattr((root / rel).c_str(), "user.note", "n", 1, 0) == 0);
    fs::create_hard_link(root / rel, root / (rel + "-too"));
  }

  fs::path source_root(const Case& c) const {
    std::string r = c.source_root;
    return r == "heredoc" ? heredoc.path() : r == "stage" ? stage.path() : context.path();
  }

  CopyStepOptions options(const Case& c) const {
    CopyStepOptions o{.keep_owner = c.keep_owner};
    if (c.dockerignore)
      o.excluded = [](const std::string& p) { return p == "tree/skip.log" || p == "tree/nested" || p.rfind("tree/nested/", 0) == 0; };
    return o;
  }

  // --link writes into an empty tree; --chown names are looked up in the image (stage_runner's
  // copy_link does the same).
  LayerStack parent(const Case& c, CopyStep& step) {
    if (!c.op.link) return base;
    if (CopyStep::owner_is_numeric(c.op.chown)) {
      TempDir none;
      step.resolve_owner(none.path());
    } else {
      with_view(ctx, base, [&](const fs::path& r) { step.resolve_owner(r); });
    }
    return LayerStack{};
  }

  struct Outcome {
    std::string listing, error;
  };

  Outcome on_disk(const Case& c) {
    UniqueFd src = open_file(source_root(c), O_RDONLY | O_DIRECTORY);
    CopyStep step(c.op, c.dest, src.get(), options(c));
    try {
      LayerStack p = parent(c, step);
      step.key_inputs();
      FsStepResult r = run_fs_step(ctx, p, [&](const fs::path& merged) { step.write(merged); }, {}, kNow);
      return {layer_listing(store, r.layer.descriptor.digest), ""};
    } catch (const Error& e) {
      return {"", e.what()};
    }
  }

  Outcome streamed(const Case& c) {
    UniqueFd src = open_file(source_root(c), O_RDONLY | O_DIRECTORY);
    CopyStep step(c.op, c.dest, src.get(), options(c));
    try {
      LayerStack p = parent(c, step);
      step.key_inputs();  // as the stage runner does: write(tree) may reuse the key's plan
      REQUIRE_FALSE(step.extracts_archives());
      FsStepResult r =
          run_streamed_step(ctx, p, [&](LayerTree& tree, const fs::path& view) { step.write(tree, view); }, kNow);
      return {layer_listing(store, r.layer.descriptor.digest), ""};
    } catch (const Error& e) {
      return {"", e.what()};
    }
  }
};

std::vector<Case> cases() {
  return {
      {.name = "a file to a new path", .op = {.sources = {"top.txt"}, .dest = "/new/f"}, .dest = "/new/f",
       .expect = {"new/f type=0 mode=420 owner=0:0 mtime=1000."}},
      {.name = "a file into a new directory (trailing slash)", .op = {.sources = {"top.txt"}, .dest = "/new/"},
       .dest = "/new/", .expect = {"new/top.txt type=0 "}},
      {.name = "a file into an existing directory, no trailing slash", .op = {.sources = {"top.txt"}, .dest = "/srv"},
       .dest = "/srv", .expect = {"srv type=1 mode=488 owner=5:6 ", "srv/top.txt type=0 "}},
      {.name = "a fifo is not copied, but what was at its destination goes",
       .op = {.sources = {"tree/fifo"}, .dest = "/srv/old"}, .dest = "/srv/old",
       .expect = {"srv/.wh.old type=0 mode=384 "}},
      {.name = "a file replaces a file", .op = {.sources = {"top.txt"}, .dest = "/srv/old"}, .dest = "/srv/old",
       .expect = {"srv/old type=0 mode=420 owner=0:0 mtime=1000."}},
      {.name = "a file below deep existing and new parents", .op = {.sources = {"top.txt"}, .dest = "/opt/a/b/c/top"},
       .dest = "/opt/a/b/c/top", .expect = {"opt/a type=1 mode=493 owner=7:8 ", "opt/a/b/c type=1 mode=493 owner=0:0 "}},
      {.name = "a directory into a new path", .op = {.sources = {"tree"}, .dest = "/dest/"}, .dest = "/dest/",
       .expect = {"dest type=1 mode=493 owner=0:0 mtime=1000000000.", "dest/empty type=1 mode=448 ",
                  "dest/hard type=3 ", "dest/dangling type=2 mode=511 owner=0:0 mtime=7100.0 size=0 link=missing/target",
                  "dest/devnull type=0 mode=416 owner=0:0 mtime=6150.0 size=0",
                  "dest/sock type=0 mode=416 owner=0:0 ", "dest/suid type=0 mode=2541 "}},
      {.name = "a directory to a new path without a slash", .op = {.sources = {"tree"}, .dest = "/dest"}, .dest = "/dest",
       .expect = {"dest/a.txt type=0 "}},
      {.name = "a directory into an existing one keeps its owner and mode", .op = {.sources = {"tree"}, .dest = "/srv/"},
       .dest = "/srv/", .expect = {"srv type=1 mode=488 owner=5:6 ", "srv/rel-link type=2 "}},
      {.name = "several sources, --chown by name", .op = {.sources = {"tree", "top.txt"}, .dest = "/srv/", .chown = "app"},
       .dest = "/srv/", .expect = {"srv type=1 mode=488 owner=5:6 ", "srv/top.txt type=0 mode=420 owner=1000:1001 "}},
      {.name = "--chown uid:gid and --chmod", .op = {.sources = {"tree"}, .dest = "/srv", .chown = "7:9", .chmod = 0640},
       .dest = "/srv", .expect = {"srv/empty type=1 mode=416 owner=7:9 ", "srv/rel-link type=2 mode=511 owner=7:9 "}},
      {.name = "--chown a numeric user alone into new parents", .op = {.sources = {"top.txt"}, .dest = "/n1/n2/", .chown = "1234"},
       .dest = "/n1/n2/", .expect = {"n1 type=1 mode=493 owner=1234:1234 ", "n1/n2/top.txt type=0 mode=420 owner=1234:1234 "}},
      {.name = "wildcards, one matching nothing", .op = {.sources = {"tree/*.txt", "top*", "*.nope"}, .dest = "/srv/sub/"},
       .dest = "/srv/sub/", .expect = {"srv/sub/a.txt type=0 ", "srv/sub/top-link type=0 ", "srv/sub/top.txt type=0 "}},
      {.name = "a wildcard matching a directory", .op = {.sources = {"tre?"}, .dest = "/w/"}, .dest = "/w/",
       .expect = {"w/nested/deep/leaf type=0 "}},
      {.name = "a symlink named as a source is followed", .op = {.sources = {"top-link", "dir-link"}, .dest = "/x/"},
       .dest = "/x/", .expect = {"x/top-link type=0 mode=420 owner=0:0 mtime=2100.", "x/a.txt type=0 "}},
      {.name = "through a symlink of the image to a directory", .op = {.sources = {"tree"}, .dest = "/link/x/"},
       .dest = "/link/x/", .expect = {"srv/x/a.txt type=0 "}},
      {.name = "the destination itself a symlink to a directory", .op = {.sources = {"tree"}, .dest = "/link"},
       .dest = "/link", .expect = {"srv/hard type=3 "}},
      {.name = "a file onto a symlink to a file writes its target", .op = {.sources = {"top.txt"}, .dest = "/etc/link.conf"},
       .dest = "/etc/link.conf", .expect = {"etc/app.conf type=0 mode=420 owner=0:0 mtime=1000."}},
      {.name = "a file onto a dangling symlink", .op = {.sources = {"top.txt"}, .dest = "/dangling"}, .dest = "/dangling",
       .expect = {"nowhere/deeper type=0 "}},
      {.name = "below a dangling symlink", .op = {.sources = {"top.txt"}, .dest = "/dangling/f"}, .dest = "/dangling/f",
       .expect = {"nowhere/deeper/f type=0 "}},
      {.name = "through a relative symlink inside an existing directory", .op = {.sources = {"top.txt"}, .dest = "/srv/to-sub/"},
       .dest = "/srv/to-sub/", .expect = {"srv/sub/top.txt type=0 "}},
      {.name = ".dockerignore'd entries are left out", .op = {.sources = {"tree"}, .dest = "/d/"}, .dest = "/d/",
       .dockerignore = true, .expect = {"d/a.txt type=0 "}},
      {.name = "--exclude with an exception", .op = {.sources = {"tree"}, .dest = "/d/", .excludes = {"nested", "!nested/note.md", "*.log"}},
       .dest = "/d/", .expect = {"d/nested type=1 ", "d/nested/note.md type=0 "}},
      {.name = "--parents with a pivot and **", .op = {.sources = {"tree/./nested/**"}, .dest = "/opt/", .parents = true},
       .dest = "/opt/", .expect = {"opt/nested/deep/leaf type=0 "}},
      {.name = "--parents of literal paths into an existing directory",
       .op = {.sources = {"tree/nested/deep/leaf", "top.txt"}, .dest = "/opt/a/", .parents = true}, .dest = "/opt/a/",
       .expect = {"opt/a/tree/nested/deep/leaf type=0 "}},
      {.name = "--parents through directories the image has: only their mode changes",
       .op = {.sources = {"opt/a/x.txt"}, .dest = "/", .parents = true}, .dest = "/",
       .expect = {"opt/a type=1 mode=457 owner=7:8 ", "opt/a/x.txt type=0 "}},
      {.name = "into the directory a trailing /. names", .op = {.sources = {"tree/b.txt"}, .dest = "/srv/."},
       .dest = "/srv/.", .expect = {"srv/b.txt type=0 "}},
      {.name = "--link into an empty tree", .op = {.sources = {"tree", "top.txt"}, .dest = "/srv/", .link = true},
       .dest = "/srv/", .expect = {"srv type=1 mode=493 owner=0:0 ", "srv/hard type=3 "}},
      {.name = "--link with --chown by name", .op = {.sources = {"top.txt"}, .dest = "/l/f", .chown = "app", .link = true},
       .dest = "/l/f", .expect = {"l/f type=0 mode=420 owner=1000:1001 "}},
      {.name = "ADD of files that are no archives", .op = {.sources = {"tree/b.txt", "top.txt"}, .dest = "/add/", .add = true},
       .dest = "/add/", .expect = {"add/b.txt type=0 "}},
      {.name = "heredoc files", .op = {.sources = {"script.sh", "conf"}, .dest = "/h/"}, .dest = "/h/",
       .source_root = "heredoc", .expect = {"h/script.sh type=0 mode=420 owner=0:0 mtime=8000."}},
      {.name = "heredoc file with --chmod", .op = {.sources = {"script.sh"}, .dest = "/usr/local/bin/run", .chmod = 0755},
       .dest = "/usr/local/bin/run", .source_root = "heredoc", .expect = {"usr/local/bin/run type=0 mode=493 "}},
      {.name = "COPY --from keeps owners", .op = {.sources = {"app"}, .dest = "/app/"}, .dest = "/app/",
       .keep_owner = true, .source_root = "stage",
       .expect = {"app/bin/tool type=0 mode=493 owner=1000:1001 ", "app/etc type=1 mode=493 owner=33:33 ",
                  "app/tool-link type=2 mode=511 owner=44:45 "}},
      {.name = "COPY --from with --chown", .op = {.sources = {"app/etc/cfg", "app/bin"}, .dest = "/o/", .chown = "app:app"},
       .dest = "/o/", .keep_owner = true, .source_root = "stage", .expect = {"o/cfg type=0 mode=384 owner=1000:1001 "}},
      {.name = "a directory onto a file fails", .op = {.sources = {"tree"}, .dest = "/replace"}, .dest = "/replace",
       .error = "onto the non-directory \"/replace\""},
      {.name = "a file named like a directory of the image fails", .op = {.sources = {"sub"}, .dest = "/srv/"},
       .dest = "/srv/", .error = "onto the directory \"/srv/sub\""},
      {.name = "a directory onto a symlink of the image fails", .op = {.sources = {"lnk"}, .dest = "/"}, .dest = "/",
       .error = "onto the non-directory \"/link\""},
      {.name = "a symlink replaces the image's symlink", .op = {.sources = {"lnk2"}, .dest = "/srv/"}, .dest = "/srv/",
       .expect = {"srv/to-sub type=2 mode=511 owner=0:0 mtime=7100.0 size=0 link=elsewhere"}},
      {.name = "several sources need a trailing slash", .op = {.sources = {"top.txt", "two.txt"}, .dest = "/srv/sub"},
       .dest = "/srv/sub", .error = "must be a directory and end with a /"},
      {.name = "a missing source", .op = {.sources = {"nope.txt"}, .dest = "/x"}, .dest = "/x", .error = "nope.txt"},
      {.name = "an unknown --chown name", .op = {.sources = {"top.txt"}, .dest = "/y", .chown = "nobody"}, .dest = "/y",
       .error = "nobody"},
  };
}

}  // namespace

TEST_CASE("COPY rules: every fixture gives the same tree on disk and streamed") {
  REQUIRE_ROOT();
  Fixture f;
  for (const Case& c : cases()) {
    CAPTURE(c.name);
    Fixture::Outcome disk = f.on_disk(c);
    Fixture::Outcome tree = f.streamed(c);
    if (c.error) {
      CHECK(disk.error.find(c.error) != std::string::npos);
      CHECK(tree.error == disk.error);
      continue;
    }
    REQUIRE_MESSAGE(disk.error.empty(), disk.error);
    REQUIRE_MESSAGE(tree.error.empty(), tree.error);
    std::string diff = test::listing_diff(disk.listing, tree.listing);
    CHECK_MESSAGE(diff.empty(), "disk (-) and streamed (+) differ:\n" << diff);
    for (const auto& want : c.expect) {
      CAPTURE(want);
      bool held = ("\n" + disk.listing).find("\n" + want) != std::string::npos;
      CHECK_MESSAGE(held, disk.listing);
    }
  }
}

// docker's layers carry a file's security.capability when COPY --from copies it (--chown or
// not: it is set after the owner), and no other xattr; build-context files carry none.
TEST_CASE("COPY rules: security.capability travels with COPY --from only, on disk and streamed") {
  REQUIRE_ROOT();
  Fixture f;
  Fixture::capped(f.stage.path(), "caps/ping");
  Fixture::capped(f.context.path(), "caps/ping");
  const std::string cap = "security.capability=" + std::string(kCap, sizeof kCap);
  struct XCase {
    Case c;
    bool has_cap;
    bool linked = true;  // the second name is copied too
  };
  std::vector<XCase> xcases = {
      {{.name = "from a stage", .op = {.sources = {"caps"}, .dest = "/c/"}, .dest = "/c/", .keep_owner = true,
        .source_root = "stage"}, true},
      {{.name = "from a stage with --chown", .op = {.sources = {"caps/ping"}, .dest = "/c/p", .chown = "7:9"},
        .dest = "/c/p", .keep_owner = true, .source_root = "stage"}, true, false},
      {{.name = "from a stage with --link", .op = {.sources = {"caps"}, .dest = "/c/", .link = true}, .dest = "/c/",
        .keep_owner = true, .source_root = "stage"}, true},
      {{.name = "from the context", .op = {.sources = {"caps"}, .dest = "/c/"}, .dest = "/c/"}, false},
  };
  for (const auto& [c, has_cap, linked] : xcases) {
    CAPTURE(c.name);
    Fixture::Outcome disk = f.on_disk(c);
    Fixture::Outcome tree = f.streamed(c);
    REQUIRE_MESSAGE(disk.error.empty(), disk.error);
    REQUIRE_MESSAGE(tree.error.empty(), tree.error);
    std::string diff = test::listing_diff(disk.listing, tree.listing);
    CHECK_MESSAGE(diff.empty(), "disk (-) and streamed (+) differ:\n" << diff);
    std::string ping;  // the line of the file (the first name; the second is a hardlink entry)
    std::istringstream lines(disk.listing);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("c/p", 0) == 0 && line.find(" type=0 ") != std::string::npos) ping = line;
    REQUIRE_MESSAGE(!ping.empty(), disk.listing);
    CHECK_MESSAGE((ping.find(cap) != std::string::npos) == has_cap, ping);
    CHECK_MESSAGE(disk.listing.find("user.note") == std::string::npos, disk.listing);
    CHECK_MESSAGE((disk.listing.find("type=3 ") != std::string::npos) == linked, disk.listing);
  }
}
