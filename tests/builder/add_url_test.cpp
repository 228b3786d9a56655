// ADD of http(s) URLs: the helpers (builder/steps/add_url.h) against a loopback HTTP server, and
// `cbuild build` end to end — names, modes, owners, mtimes, --checksum, the cache, failures —
// compared with docker build where docker can fetch from the loopback server too.
#include "builder/steps/add_url.h"

#include <sys/stat.h>

#include <doctest/doctest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/layout_store.h"
#include "oci/manifest.h"
#include "builder/plan/source_kind.h"
#include "registry-client/curl_http.h"
#include "tests/overlay/overlay_test_util.h"
#include "tests/support/build_project.h"
#include "tests/support/busybox_rootfs.h"
#include "tests/support/docker_peer.h"
#include "tests/support/http_server.h"
#include "tests/support/image_tree.h"
#include "tests/support/registry_server.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"
#include "tests/support/store_image.h"

namespace fs = std::filesystem;
using namespace cbuild;
using nlohmann::json;

namespace {

constexpr const char* kLastModified = "Wed, 21 Oct 2015 07:28:00 GMT";
constexpr std::int64_t kLastModifiedUnix = 1445412480;

std::string sha256_of(const std::string& s) { return oci::Digest::of(s).str(); }

ErrorKind fetch_error(registry::HttpClient& http, const std::string& url, const fs::path& file,
                      builder::UrlFetchOptions o = {}) {
  try {
    builder::fetch_url(http, url, file, o);
  } catch (const Error& e) {
    MESSAGE(std::string(e.what()));
    return e.kind();
  }
  FAIL("fetch of " << url << " did not fail");
  return ErrorKind::Internal;
}


std::string stat_line(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return "missing";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  return std::string(S_ISREG(st.st_mode) ? "file " : "other ") + mode + " " + std::to_string(st.st_uid) + ":" +
         std::to_string(st.st_gid) + " mtime=" + std::to_string(st.st_mtim.tv_sec);
}

}  // namespace

TEST_CASE("url_file_name and is_url_source follow BuildKit") {
  using builder::url_file_name;
  CHECK(url_file_name("http://h/files/tool.sh") == "tool.sh");
  CHECK(url_file_name("https://h:8443/a/b.tar.gz?x=1#frag") == "b.tar.gz");
  CHECK(url_file_name("http://h/dir/") == "dir");
  CHECK(url_file_name("http://h/") == "__unnamed__");
  CHECK(url_file_name("http://h") == "__unnamed__");
  CHECK(url_file_name("http://h/a%20b.txt") == "a b.txt");
  CHECK(url_file_name("http://h/x/..") == "__unnamed__");
  CHECK(builder::is_url_source("https://example.com/f"));
  CHECK_FALSE(builder::is_url_source("https://github.com/o/r.git"));
  CHECK(builder::is_git_source("https://github.com/o/r.git#main"));
  CHECK(builder::is_git_source("git@github.com:o/r.git"));
  CHECK_FALSE(builder::is_url_source("./http://x"));
  CHECK(builder::redact_url("https://me:s3cret@h/x?a=b@c") == "https://me:xxxxx@h/x?a=b@c");
  CHECK(builder::redact_url("https://me@h/x") == "https://me@h/x");
  CHECK(builder::redact_url("http://h/x@y") == "http://h/x@y");
}

TEST_CASE("parse_http_date reads the three HTTP-date forms") {
  CHECK(builder::parse_http_date(kLastModified) == kLastModifiedUnix);
  CHECK(builder::parse_http_date("Wednesday, 21-Oct-15 07:28:00 GMT") == kLastModifiedUnix);
  CHECK(builder::parse_http_date("Wed Oct 21 07:28:00 2015") == kLastModifiedUnix);
  CHECK_FALSE(builder::parse_http_date("yesterday"));
  CHECK_FALSE(builder::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT trailing"));
}

TEST_CASE("fetch_url: content, mode, mtime, redirects, retries, checksum and failures") {
  test::HttpServer server;
  server.route("/f.txt", test::HttpServer::Reply{.status = 200, .body = "payload\n", .headers = {{"Last-Modified", kLastModified}}});
  server.route("/moved", test::HttpServer::Reply{.status = 302, .body = "", .headers = {{"Location", "/f.txt"}}});
  server.route("/flaky", std::vector<test::HttpServer::Reply>{{.status = 503, .body = "busy", .headers = {}},
                                                               {.status = 200, .body = "second\n", .headers = {}}});
  server.route("/down", test::HttpServer::Reply{.status = 500, .body = "no", .headers = {}});
  registry::CurlHttp http;
  TempDir t;
  fs::path f = t.path() / "out";

  auto got = builder::fetch_url(http, server.url("/f.txt"), f);
  CHECK(read_file(f) == "payload\n");
  CHECK(got.digest.str() == sha256_of("payload\n"));
  CHECK(got.last_modified == kLastModifiedUnix);
  struct stat st {};
  REQUIRE(::stat(f.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(st.st_mtim.tv_sec == kLastModifiedUnix);

  got = builder::fetch_url(http, server.url("/moved"), f);
  CHECK(read_file(f) == "payload\n");

  got = builder::fetch_url(http, server.url("/flaky"), f);
  CHECK(read_file(f) == "second\n");
  CHECK(server.hits("/flaky") == 2);
  CHECK_FALSE(got.last_modified);
  REQUIRE(::stat(f.c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == 0);  // no Last-Modified: the Unix epoch, as BuildKit

  builder::UrlFetchOptions pinned;
  pinned.expected = oci::Digest::of("payload\n");
  CHECK(builder::fetch_url(http, server.url("/f.txt"), f, pinned).digest == *pinned.expected);
  pinned.expected = oci::Digest::of("something else");
  CHECK(fetch_error(http, server.url("/f.txt"), f, pinned) == ErrorKind::DataLoss);
  CHECK_FALSE(fs::exists(f));  // nothing half-fetched stays behind

  CHECK(fetch_error(http, server.url("/missing"), f) == ErrorKind::NotFound);
  CHECK(fetch_error(http, server.url("/down"), f) == ErrorKind::Unavailable);
  CHECK(server.hits("/down") == 3);  // retried, then given up
  int closed = test::free_loopback_port();
  CHECK(fetch_error(http, "http://127.0.0.1:" + std::to_string(closed) + "/x", f) == ErrorKind::Unavailable);
}

TEST_CASE("build: ADD of a URL names, owns, stamps and keeps the file as docker does; --checksum pins it") {
  REQUIRE_ROOT();
  test::HttpServer server;
  const std::string script = "#!/bin/sh\necho tool\n";
  server.route("/files/tool.sh", test::HttpServer::Reply{.status = 200, .body = script, .headers = {{"Last-Modified", kLastModified}}});
  server.route("/plain", test::HttpServer::Reply{.status = 200, .body = "no date\n", .headers = {}});
  // A real gzip'ed tar: ADD extracts local archives, never remote ones.
  TempDir t;
  fs::create_directories(t.path() / "src");
  write_file_atomic(t.path() / "src/inside", "x");
  auto tar = test::run_command({"tar", "-czf", (t.path() / "a.tar.gz").string(), "-C", (t.path() / "src").string(), "inside"});
  REQUIRE(tar.exit_code == 0);
  server.route("/archive.tar.gz", test::HttpServer::Reply{.status = 200, .body = read_file(t.path() / "a.tar.gz"), .headers = {}});

  test::BuildProject p(test::base_for_test());
  const std::string sum = sha256_of(script);
  p.file("Dockerfile", "FROM " + p.base + "\n" +
               "ADD --checksum=" + sum + " " + server.url("/files/tool.sh") + " /pinned/\n" +
               "ADD " + server.url("/files/tool.sh") + " /opt/\n" +
               "ADD " + server.url("/files/tool.sh") + " /opt/renamed\n" +
               "ADD --chown=app:extra --chmod=0755 " + server.url("/files/tool.sh") + " /tools/\n" +
               "ADD " + server.url("/archive.tar.gz") + " /ar/\n" +
               "ADD " + server.url("/plain") + " /plain\n");
  auto r = p.build({"-t", "url:1"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  fs::path fsroot = p.tree("docker.io/library/url:1", work.path() / "a/rootfs");
  CHECK(read_file(fsroot / "opt/tool.sh") == script);
  CHECK(stat_line(fsroot / "opt/tool.sh") == "file 0600 0:0 mtime=" + std::to_string(kLastModifiedUnix));
  CHECK(read_file(fsroot / "opt/renamed") == script);
  CHECK(stat_line(fsroot / "tools/tool.sh") == "file 0755 1000:1500 mtime=" + std::to_string(kLastModifiedUnix));
  CHECK(stat_line(fsroot / "ar/archive.tar.gz") == "file 0600 0:0 mtime=0");
  CHECK_FALSE(fs::exists(fsroot / "ar/inside"));
  CHECK(stat_line(fsroot / "plain") == "file 0600 0:0 mtime=0");
  CHECK(read_file(fsroot / "pinned/tool.sh") == script);

  SUBCASE("a rebuild fetches unpinned URLs again and reuses layers whose content did not change") {
    int before = server.hits("/plain");
    auto again = p.build({"-t", "url:2"});
    REQUIRE_MESSAGE(again.exit_code == 0, again.err);
    CHECK(again.out == r.out);
    CHECK(server.hits("/plain") == before + 1);
    server.route("/plain", test::HttpServer::Reply{.status = 200, .body = "changed\n", .headers = {}});
    auto changed = p.build({"-t", "url:3"});
    REQUIRE_MESSAGE(changed.exit_code == 0, changed.err);
    CHECK(changed.out != r.out);
    fs::path c = p.tree("docker.io/library/url:3", work.path() / "c/rootfs");
    CHECK(read_file(c / "plain") == "changed\n");
  }
  SUBCASE("with the server gone, only a step pinned by --checksum is still a cache hit") {
    server.stop();
    p.file("Dockerfile", "FROM " + p.base + "\nADD --checksum=" + sum + " " + server.url("/files/tool.sh") + " /pinned/\n");
    auto pinned = p.build({"-t", "url:pinned"});
    REQUIRE_MESSAGE(pinned.exit_code == 0, pinned.err);
    CHECK(pinned.err.find("CACHED") != std::string::npos);
    p.file("Dockerfile", "FROM " + p.base + "\nADD " + server.url("/plain") + " /plain\n");
    auto unpinned = p.build({"-t", "url:unpinned"});
    CHECK(unpinned.exit_code == 1);
    CHECK(unpinned.err.find("Dockerfile:2: ADD " + server.url("/plain") + " /plain: cannot fetch \"" +
                            server.url("/plain") + "\"") != std::string::npos);
  }
}

TEST_CASE("build: a URL that fails (404, refused, wrong checksum) ends in one message and leaves no tag") {
  REQUIRE_ROOT();
  test::HttpServer server;
  server.route("/f", test::HttpServer::Reply{.status = 200, .body = "real content\n", .headers = {}});
  test::BuildProject p(test::base_for_test());
  std::size_t tags = p.tags();
  auto blobs = [&] {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(p.root / "blobs/sha256")) n += e.is_regular_file() ? 1 : 0;
    return n;
  };
  std::size_t blobs_before = blobs();
  std::string expected;
  SUBCASE("404") {
    p.file("Dockerfile", "FROM " + p.base + "\n\nADD " + server.url("/missing") + " /x\n");
    expected = "Dockerfile:3: ADD " + server.url("/missing") + " /x: cannot fetch \"" + server.url("/missing") +
               "\": HTTP status 404 (Not Found)";
  }
  SUBCASE("connection refused") {
    std::string url = "http://127.0.0.1:" + std::to_string(test::free_loopback_port()) + "/f";
    p.file("Dockerfile", "FROM " + p.base + "\nADD " + url + " /x\n");
    expected = "Dockerfile:2: ADD " + url + " /x: cannot fetch \"" + url + "\": ";
  }
  SUBCASE("checksum mismatch") {
    std::string wrong = sha256_of("other content\n");
    p.file("Dockerfile", "FROM " + p.base + "\nADD --checksum=" + wrong + " " + server.url("/f") + " /x\n");
    expected = "Dockerfile:2: ADD --checksum=" + wrong + " " + server.url("/f") + " /x: checksum mismatch for \"" +
               server.url("/f") + "\": got " + sha256_of("real content\n") + ", expected " + wrong;
  }
  SUBCASE("a malformed checksum") {
    p.file("Dockerfile", "FROM " + p.base + "\nADD --checksum=md5:abc " + server.url("/f") + " /x\n");
    expected = "Dockerfile:2: ADD: invalid --checksum \"md5:abc\"";
  }
  SUBCASE("COPY of a URL, and a Git source") {
    p.file("Dockerfile", "FROM " + p.base + "\nCOPY " + server.url("/f") + " /x\n");
    auto c = p.build({"-t", "bad:1"});
    CHECK(c.exit_code == 1);
    CHECK(c.err.find("Dockerfile:2: COPY: source can't be a URL for COPY") != std::string::npos);
    p.file("Dockerfile", "FROM " + p.base + "\nADD https://github.com/moby/buildkit.git /src\n");
    expected = "Dockerfile:2: ADD: Git sources (https://github.com/moby/buildkit.git) are not supported yet";
  }
  auto r = p.build({"-t", "bad:1"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.err.find(expected) != std::string::npos, "expected: " << expected << "\ngot: " << r.err);
  CHECK(r.err.find("cbuild: error:") != std::string::npos);
  CHECK(p.tags() == tags);
  CHECK(blobs() == blobs_before);  // the fetch fails before any layer is written
  CHECK_FALSE(test::has_mounts_under(p.root));
}

TEST_CASE("build: ADD of a URL matches docker build's file (name, mode, owner, mtime)") {
  REQUIRE_ROOT();
  test::DockerPeer* docker = test::DockerPeer::get();
  if (!docker) return;
  test::HttpServer server;
  server.route("/files/tool.sh", test::HttpServer::Reply{.status = 200, .body = "#!/bin/sh\necho tool\n",
                                                          .headers = {{"Last-Modified", kLastModified}}});
  server.route("/plain", test::HttpServer::Reply{.status = 200, .body = "no date\n", .headers = {}});
  test::BuildProject p(docker->base());
  // The dockerd here (20.10) fetches ADD URLs itself, in the host's network, even for
  // --network=none builds; it knows neither --checksum nor --chmod on ADD.
  p.file("Dockerfile", "FROM " + p.base + "\n" +
               "ADD " + server.url("/files/tool.sh") + " /opt/\n" +
               "ADD " + server.url("/files/tool.sh") + " /opt/renamed\n" +
               "ADD --chown=app:extra " + server.url("/files/tool.sh") + " /owned/\n" +
               "ADD " + server.url("/plain") + " /plain\n");
  auto r = p.build({"-t", "url:docker"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  TempDir work;
  fs::path mine = p.tree("docker.io/library/url:docker", work.path() / "mine/rootfs");
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker");
  REQUIRE_MESSAGE(b.result.exit_code == 0, b.result.err);
  std::string diff = test::listing_diff(test::tree_listing(b.rootfs), test::tree_listing(mine));
  CHECK_MESSAGE(diff.empty(), "docker (-) vs cbuild (+):\n" << diff);
  for (const char* f : {"opt/tool.sh", "opt/renamed", "owned/tool.sh", "plain"})
    CHECK_MESSAGE(stat_line(b.rootfs / f) == stat_line(mine / f), std::string(f));
}
