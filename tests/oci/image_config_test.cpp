#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/image_config.h"

using namespace cbuild;
using namespace cbuild::oci;

namespace {
const std::string kDiff = "sha256:" + std::string(64, 'c');

std::string error_of(std::string_view doc) {
  try {
    ImageConfig::parse(doc, "config sha256:x");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::InvalidArgument);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("docker-format config fields survive parse and write") {
  std::string doc = R"({"architecture":"amd64","os":"linux","created":"2024-05-06T07:08:09.123456789Z",
    "docker_version":"24.0.0","container":"abc",
    "config":{"User":"1000:1000","Env":["PATH=/bin","A=b=c"],"Entrypoint":null,"Cmd":["/bin/sh","-c","x"],
      "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}},"WorkingDir":"/w","Labels":{"k":"v"},
      "StopSignal":"SIGTERM","ArgsEscaped":true,"OnBuild":["RUN x"],"Shell":["/bin/bash","-c"],
      "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":30000000000,"Retries":3,"StartPeriod":5},
      "Hostname":"h","Image":"sha256:00"},
    "rootfs":{"type":"layers","diff_ids":[")" + kDiff + R"("]},
    "history":[{"created":"2024-05-06T07:08:09Z","created_by":"/bin/sh -c #(nop) CMD","empty_layer":true},{"created_by":"ADD x"}]})";
  ImageConfig c = ImageConfig::parse(doc);
  CHECK(c.architecture == "amd64");
  CHECK(c.config.user == "1000:1000");
  CHECK(c.config.getenv("A") == "b=c");
  CHECK(!c.config.getenv("B"));
  CHECK(!c.config.entrypoint);
  REQUIRE(c.config.cmd);
  CHECK(c.config.cmd->size() == 3);
  CHECK(c.config.exposed_ports.count("53/udp") == 1);
  CHECK(c.config.volumes.count("/data") == 1);
  CHECK(c.config.args_escaped == true);
  REQUIRE(c.config.healthcheck);
  CHECK(c.config.healthcheck->interval_ns == 30000000000);
  CHECK(c.config.healthcheck->retries == 3);
  CHECK(c.config.on_build == std::vector<std::string>{"RUN x"});
  CHECK(c.config.shell.size() == 2);
  CHECK(c.config.extra.count("Hostname") == 1);
  CHECK(c.extra.count("docker_version") == 1);
  CHECK(c.rootfs.diff_ids.at(0).str() == kDiff);
  CHECK(c.history.size() == 2);
  CHECK(c.non_empty_history() == 1);

  ImageConfig again = ImageConfig::parse(c.to_json());
  CHECK(again == c);
  auto j = nlohmann::json::parse(c.to_json());
  CHECK(j["docker_version"] == "24.0.0");
  CHECK(j["config"]["Hostname"] == "h");
  CHECK(j["config"]["ExposedPorts"].contains("80/tcp"));

  c.config.setenv("PATH", "/usr/bin");
  c.config.setenv("NEW", "1");
  CHECK(c.config.env.front() == "PATH=/usr/bin");
  CHECK(c.config.env.back() == "NEW=1");
}

TEST_CASE("malformed configs name the field") {
  CHECK(error_of("nope").find("config sha256:x: not valid JSON") == 0);
  CHECK(error_of(R"({"os":"linux","rootfs":{"type":"layers","diff_ids":[]}})").find("\"architecture\" is missing") != std::string::npos);
  CHECK(error_of(R"({"architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}})").find("\"os\" is missing") != std::string::npos);
  CHECK(error_of(R"({"architecture":"amd64","os":"linux"})").find("\"rootfs\" is missing") != std::string::npos);
  CHECK(error_of(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"x","diff_ids":[]}})").find("rootfs.type") != std::string::npos);
  CHECK(error_of(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}})").find("rootfs.diff_ids") != std::string::npos);
  CHECK(error_of(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:zz"]}})").find("diff_ids[0]") != std::string::npos);
  CHECK(error_of(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":"A=1"}})").find("config.Env") != std::string::npos);
  CHECK(error_of(R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"history":[{"empty_layer":"yes"}]})").find("history[0].empty_layer") != std::string::npos);
}

TEST_CASE("writing refuses what the spec forbids") {
  ImageConfig c;
  c.architecture = "amd64";
  c.os = "linux";
  c.config.env = {"NOEQUALS"};
  CHECK_THROWS_AS(c.to_json(), Error);
  c.config.env = {"A=1"};
  c.created = "yesterday";
  CHECK_THROWS_AS(c.to_json(), Error);
  c.created = rfc3339_utc(0);
  CHECK(c.created == "1970-01-01T00:00:00Z");
  CHECK_NOTHROW(c.to_json());
}

TEST_CASE("rfc3339 times") {
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339("2024-02-29T12:00:00.5+02:00") == 1709208000 - 7200);
  CHECK(parse_rfc3339(rfc3339_utc(1700000000)) == 1700000000);
  CHECK(!parse_rfc3339("2024-13-01T00:00:00Z"));
  CHECK(!parse_rfc3339("2024-01-01 00:00"));
  CHECK(!parse_rfc3339("2024-01-01T00:00:00"));
}
