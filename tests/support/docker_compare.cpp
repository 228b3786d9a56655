#include "tests/support/docker_compare.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/docker_peer.h"
#include "tests/support/image_tree.h"

namespace cbuild::test {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string> kComparedConfigFields = {"Env",     "Cmd",          "Entrypoint", "WorkingDir",
                                                        "User",    "ExposedPorts", "Volumes",    "Labels",
                                                        "StopSignal", "Shell",     "Healthcheck", "OnBuild"};

namespace {

json field(const json& config, const std::string& k) {
  if (!config.contains("config") || !config["config"].is_object()) return json();
  return config["config"].value(k, json());
}

json history(const json& config) {
  json out = json::array();
  for (const auto& h : config.value("history", json::array()))
    out.push_back({h.value("created_by", ""), h.value("empty_layer", false)});
  return out;
}

}  // namespace

bool check_same_as_docker(const BuildProject& p, const std::string& tag, const std::vector<std::string>& flags) {
  DockerPeer* docker = DockerPeer::get();
  if (!docker) return false;
  std::vector<std::string> args{"-t", tag, "--format", "docker"};
  args.insert(args.end(), flags.begin(), flags.end());
  auto r = p.build(args);
  REQUIRE_MESSAGE(r.exit_code == 0, "cbuild: " << r.err);
  TempDir work;
  auto [mine, tree] = p.image("docker.io/library/" + tag, work.path() / "mine/rootfs");
  auto b = docker->build(p.ctx, p.ctx / "Dockerfile", work.path() / "docker", flags);
  REQUIRE_MESSAGE(b.result.exit_code == 0, "docker: " << b.result.err);
  std::string diff = listing_diff(tree_listing(b.rootfs), tree_listing(tree));
  CHECK_MESSAGE(diff.empty(), "file tree, docker (-) vs cbuild (+):\n" << diff);
  for (const auto& k : kComparedConfigFields) {
    json d = field(b.config, k), m = field(mine, k);
    CHECK_MESSAGE(d == m, k << ": docker " << d.dump() << " cbuild " << m.dump());
  }
  json hd = history(b.config), hm = history(mine);
  CHECK_MESSAGE(hd == hm, "history [created_by, empty_layer]:\ndocker " << hd.dump(1) << "\ncbuild " << hm.dump(1));
  CHECK(b.config["rootfs"]["diff_ids"].size() == mine["rootfs"]["diff_ids"].size());
  return true;
}

std::string dockerfile_text(const BuildProject& p, std::string text) {
  for (std::size_t at; (at = text.find("{BASE}")) != std::string::npos;) text.replace(at, 6, p.base);
  for (std::size_t at; (at = text.find("{T}")) != std::string::npos;) text.replace(at, 3, "\t");
  return text;
}

}  // namespace cbuild::test
