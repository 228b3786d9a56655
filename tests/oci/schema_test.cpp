// Every JSON document cbuild writes must validate against the OCI image-spec schemas: serialize
// each kind and run the conformance validator over the result.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/descriptor.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "tests/support/conformance_dir.h"
#include "tests/support/run_command.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {
int validate(const std::string& conformance, const std::string& kind, const std::string& text,
             std::string* err = nullptr) {
  TempDir dir;
  auto file = dir.path() / (kind + ".json");
  std::ofstream(file) << text;
  auto r = test::run_command({"/usr/bin/python3", conformance + "/tools/validate_oci_json.py", kind, file.string()});
  if (err) *err = r.out + r.err;
  return r.exit_code;
}

Descriptor desc(std::string_view mt, std::string_view content) {
  Descriptor d;
  d.media_type = std::string(mt);
  d.digest = Digest::of(content);
  d.size = static_cast<std::int64_t>(content.size());
  return d;
}
}  // namespace

TEST_CASE("documents cbuild writes validate against the OCI schemas") {
  REQUIRE_CONFORMANCE_DIR(conformance);
  ImageConfig c;
  c.created = rfc3339_utc(1700000000);
  c.architecture = "amd64";
  c.os = "linux";
  c.config.env = {"PATH=/bin", "EMPTY="};
  c.config.cmd = std::vector<std::string>{"/bin/sh"};
  c.config.entrypoint = std::vector<std::string>{};
  c.config.exposed_ports = {"80/tcp"};
  c.config.volumes = {"/data"};
  c.config.labels = {{"a", "b"}};
  c.config.args_escaped = true;
  c.config.healthcheck = Healthcheck{.test = {"CMD", "true"}, .interval_ns = 1000000000, .retries = 2};
  c.config.on_build = {"RUN true"};
  c.config.shell = {"/bin/sh", "-c"};
  c.rootfs.diff_ids = {Digest::of("layer")};
  c.history = {History{.created = c.created, .created_by = "ADD x"}, History{.created_by = "CMD", .empty_layer = true}};
  std::string config_json = c.to_json();
  std::string err;
  CHECK_MESSAGE(validate(conformance, "config", config_json, &err) == 0, err);

  Manifest m;
  m.media_type = std::string(media_types::kOciManifest);
  m.config = desc(media_types::kOciConfig, config_json);
  m.layers = {desc(media_types::kOciLayerGzip, "layer-bytes")};
  m.annotations = {{"org.opencontainers.image.created", c.created}};
  std::string manifest_json = m.to_json();
  CHECK_MESSAGE(validate(conformance, "manifest", manifest_json, &err) == 0, err);

  Index x;
  x.media_type = std::string(media_types::kOciIndex);
  Descriptor md = desc(media_types::kOciManifest, manifest_json);
  md.platform = Platform{.architecture = "amd64", .os = "linux"};
  md.annotations = {{"org.opencontainers.image.ref.name", "docker.io/library/x:1"}};
  x.manifests = {md};
  CHECK_MESSAGE(validate(conformance, "index", x.to_json(), &err) == 0, err);
  CHECK_MESSAGE(validate(conformance, "descriptor", to_json(md).dump(), &err) == 0, err);
  CHECK_MESSAGE(validate(conformance, "layout", R"({"imageLayoutVersion":"1.0.0"})", &err) == 0, err);

  // The schemas skip what upstream's Go validator checks: digest lengths and Env shape.
  for (auto& d : Manifest::parse(manifest_json).layers) CHECK(d.digest.hex().size() == 64);
  for (auto& e : ImageConfig::parse(config_json).config.env) CHECK(e.find('=') != std::string::npos);
}

TEST_CASE("the validator really rejects: a manifest with an invalid digest") {
  REQUIRE_CONFORMANCE_DIR(conformance);
  Manifest m;
  m.media_type = std::string(media_types::kOciManifest);
  m.config = desc(media_types::kOciConfig, "{}");
  m.layers = {desc(media_types::kOciLayer, "x")};
  auto j = nlohmann::json::parse(m.to_json());
  j["layers"][0]["digest"] = "SHA256:nothex";
  CHECK(validate(conformance, "manifest", j.dump()) != 0);
}
