// libFuzzer target over the build-context walker (builder/context/context.h) and .dockerignore
// loading and matching. The input is decoded into a .dockerignore text and a small tree of
// files, directories and symlinks in a fresh directory, which BuildContext::read() then walks.
// Every input must end in a result or a cbuild::Error, and the result must be consistent:
// sorted unique paths, none excluded by the ignore file, each found by find(), each a real
// entry of the tree (lstat agrees: the walk never followed a symlink). Built and run by
// fuzz/run.sh.
//
// Input layout: IGNORE-TEXT \0 OP* where OP is a kind byte (mod 4: file, dir, symlink,
// file with the following name as its content) then NAME '\n' (and TARGET '\n' for a link).
// Names are created one component at a time with O_NOFOLLOW, so a fuzzed symlink can never
// redirect the tree's creation outside the fuzz directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "builder/context/context.h"
#include "builder/context/dockerignore.h"
#include "oci/base/error.h"

namespace fs = std::filesystem;
namespace b = cbuild::builder;

namespace {

constexpr std::size_t kMaxOps = 64;

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "context_fuzz: %s\n", why.c_str());
  std::abort();
}

const fs::path& base() {
  static const fs::path p = [] {
    std::string tmpl = (fs::current_path() / "tree.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    return fs::path(tmpl);
  }();
  return p;
}

std::string take_line(std::string_view& in) {
  auto nl = in.find('\n');
  std::string s(in.substr(0, nl));
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return s.size() > 200 ? s.substr(0, 200) : s;
}

std::vector<std::string> components(const std::string& name) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= name.size()) {
    auto j = name.find('/', i);
    if (j == std::string::npos) j = name.size();
    std::string c = name.substr(i, j - i);
    if (!c.empty() && c != "." && c != "..") out.push_back(c);
    i = j + 1;
  }
  return out;
}

// Creates `name` under root_fd, walking each parent with O_NOFOLLOW (making missing ones).
void create(int root_fd, int kind, const std::string& name, const std::string& extra) {
  std::vector<std::string> comps = components(name);
  if (comps.empty()) return;
  int dir = ::dup(root_fd);
  for (std::size_t i = 0; i + 1 < comps.size() && dir >= 0; ++i) {
    ::mkdirat(dir, comps[i].c_str(), 0755);
    int next = ::openat(dir, comps[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(dir);
    dir = next;
  }
  if (dir < 0) return;
  const char* leaf = comps.back().c_str();
  switch (kind) {
    case 0:
    case 3: {
      int fd = ::openat(dir, leaf, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0) {
        if (kind == 3) (void)!::write(fd, extra.data(), extra.size());
        ::close(fd);
      }
      break;
    }
    case 1:
      ::mkdirat(dir, leaf, 0755);
      break;
    default:
      ::symlinkat(extra.c_str(), dir, leaf);
      break;
  }
  ::close(dir);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nul = in.find('\0');
  std::string ignore_text(in.substr(0, nul));
  in.remove_prefix(nul == std::string_view::npos ? in.size() : nul + 1);

  const fs::path root = base() / "ctx";
  fs::remove_all(root);
  fs::create_directory(root);
  int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) fail("cannot open the fuzz directory");
  {
    int fd = ::openat(root_fd, ".dockerignore", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot write .dockerignore");
    (void)!::write(fd, ignore_text.data(), ignore_text.size());
    ::close(fd);
  }
  for (std::size_t n = 0; n < kMaxOps && !in.empty(); ++n) {
    int kind = static_cast<unsigned char>(in[0]) % 4;
    in.remove_prefix(1);
    std::string name = take_line(in);
    std::string extra = kind >= 2 ? take_line(in) : std::string();
    if (name.find('\0') != std::string::npos || extra.find('\0') != std::string::npos) continue;
    create(root_fd, kind, name, extra);
  }
  ::close(root_fd);

  b::DockerIgnore ignore;
  try {
    ignore = b::DockerIgnore::load(root, root / "Dockerfile");
  } catch (const cbuild::Error&) {
    return 0;  // a bad pattern is refused before any walk
  }
  try {
    b::BuildContext ctx = b::BuildContext::read(root, ignore);
    auto excluded = ctx.excluded_predicate();
    std::string prev;
    bool first = true;
    for (const b::ContextEntry& e : ctx.entries()) {
      if (!first && !(prev < e.path)) fail("entries not sorted and unique: " + prev + " / " + e.path);
      first = false;
      prev = e.path;
      if (e.path.empty() || b::clean_path(e.path) != e.path || e.path.rfind("../", 0) == 0)
        fail("bad entry path: " + e.path);
      using V = b::DockerIgnore::Verdict;
      V v = ignore.context_verdict(e.path);
      if (v == V::Excluded || (v == V::SentIfDirectory && !S_ISDIR(e.st.st_mode)) || (excluded && excluded(e.path)))
        fail("excluded entry listed: " + e.path);
      if (ctx.find(e.path) != &e) fail("find() misses " + e.path);
      struct stat st {};
      if (::lstat((root / e.path).c_str(), &st) != 0) fail("entry does not exist: " + e.path);
      if ((st.st_mode & S_IFMT) != (e.st.st_mode & S_IFMT) || st.st_ino != e.st.st_ino)
        fail("entry does not match its lstat: " + e.path);
      if (S_ISLNK(st.st_mode)) {
        std::string t = fs::read_symlink(root / e.path).string();
        if (t != e.link_target) fail("link target differs: " + e.path);
      }
    }
    (void)ctx.find("");
    (void)ctx.find("../x");
  } catch (const cbuild::Error&) {
  }
  return 0;
}
