// Registries that answer what a client does not expect: an HTML page where a manifest should
// be (a proxy or login portal in the way), and a manifest of a media type cbuild does not know.
// Each must end in one line naming the reference, exit 1, and nothing left in the store.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "oci/base/fs.h"
#include "tests/support/http_server.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using cbuild::test::HttpServer;
using cbuild::test::run_cbuild;

namespace {

std::size_t files_under(const std::filesystem::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) ++n;
  return n;
}

// Pulls `repo:1` from the server into an empty store and checks the failure's shape.
std::string pull_fails(HttpServer& srv, const std::string& repo) {
  TempDir root;
  std::string ref = "127.0.0.1:" + std::to_string(srv.port()) + "/" + repo + ":1";
  auto r = run_cbuild({"--root", root.path().string(), "pull", ref});
  CHECK(r.exit_code == 1);
  INFO("stderr: " << r.err);
  // progress lines may come first ("pulling REF"); the failure is one last line
  std::string last = r.err.substr(0, r.err.size() - 1);
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  CHECK(last.rfind("cbuild: error:", 0) == 0);
  CHECK(r.err.find("cbuild: error:") == r.err.rfind("cbuild: error:"));
  CHECK(last.find(repo) != std::string::npos);
  CHECK(files_under(root.path() / "blobs") == 0);
  CHECK(files_under(root.path() / "tmp") == 0);
  return last;
}

}  // namespace

TEST_CASE("pull: a registry answering HTML, or a manifest of an unknown media type, is one clear error") {
  HttpServer srv;
  srv.route("/v2/", HttpServer::Reply{200, "{}", {{"Content-Type", "application/json"}}});
  const std::string html = "<html><body><h1>Welcome to the corporate proxy</h1></body></html>";
  srv.route("/v2/html/manifests/1", HttpServer::Reply{200, html, {{"Content-Type", "text/html"}}});
  srv.route("/v2/oddtype/manifests/1",
            HttpServer::Reply{200, R"({"schemaVersion":2,"mediaType":"application/x-unknown"})",
                              {{"Content-Type", "application/x-unknown"}}});

  SUBCASE("HTML instead of a manifest") {
    std::string err = pull_fails(srv, "html");
    CHECK(err.find("text/html") != std::string::npos);
    CHECK(err.find("<html>") == std::string::npos);  // the page itself is not dumped
  }
  SUBCASE("a manifest media type cbuild does not know") {
    std::string err = pull_fails(srv, "oddtype");
    CHECK(err.find("application/x-unknown") != std::string::npos);
  }
}
