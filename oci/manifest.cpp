#include "oci/manifest.h"

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/media_types.h"

namespace cbuild::oci {
using json = nlohmann::json;

namespace {

[[noreturn]] void bad(std::string_view what, std::string_view field, std::string_view why) {
  throw Error(ErrorKind::InvalidArgument, std::string(what) + ": field " + quote(field) + " " + std::string(why));
}

json parse_object(std::string_view bytes, std::string_view what) {
  json j = json::parse(bytes, nullptr, false);
  if (j.is_discarded()) throw Error(ErrorKind::InvalidArgument, std::string(what) + ": not valid JSON");
  if (!j.is_object()) throw Error(ErrorKind::InvalidArgument, std::string(what) + ": not a JSON object");
  return j;
}

void check_schema_version(const json& j, std::string_view what) {
  auto it = j.find("schemaVersion");
  if (it == j.end()) bad(what, "schemaVersion", "is missing");
  if (!it->is_number_integer() || it->get<std::int64_t>() != 2) bad(what, "schemaVersion", "must be 2");
}

std::string opt_string(const json& j, const char* key, std::string_view what) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  if (!it->is_string()) bad(what, key, "must be a string");
  return it->get<std::string>();
}

// The document's mediaType, checked to be of its kind (`is_kind`, named `kind` in messages)
// and to agree with the descriptor that led to it (`expected`, empty when none did). An OCI
// document may omit mediaType; it then reads as `oci_type`.
std::string media_type_of(const json& j, std::string_view what, std::string_view expected,
                          bool (*is_kind)(std::string_view), std::string_view kind, std::string_view oci_type) {
  std::string type = opt_string(j, "mediaType", what);
  if (!type.empty() && !is_kind(type))
    bad(what, "mediaType", "is " + quote(type) + ", not " + std::string(kind) + " type");
  std::string_view actual = type.empty() ? oci_type : std::string_view(type);
  if (!expected.empty() && actual != expected)
    bad(what, "mediaType", "is " + quote(actual) + " but the descriptor says " + quote(expected));
  return type;
}

std::map<std::string, std::string> annotations_from(const json& j, std::string_view what) {
  std::map<std::string, std::string> out;
  auto it = j.find("annotations");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object()) bad(what, "annotations", "must be an object of strings");
  for (auto& [k, v] : it->items()) {
    if (!v.is_string()) bad(what, "annotations." + k, "must be a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

std::vector<Descriptor> descriptors_from(const json& j, const char* key, std::string_view what) {
  auto it = j.find(key);
  if (it == j.end()) bad(what, key, "is missing");
  if (it->is_null()) return {};  // Docker writes null for an empty list now and then
  if (!it->is_array()) bad(what, key, "must be an array of descriptors");
  std::vector<Descriptor> out;
  out.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    std::string sub = std::string(what) + " " + key + "[" + std::to_string(i) + "]";
    Descriptor d = descriptor_from_json((*it)[i], sub);
    if (!media_types::is_well_formed(d.media_type)) bad(sub, "mediaType", "is not a valid media type");
    out.push_back(std::move(d));
  }
  return out;
}

void check_descriptor_for_write(const Descriptor& d, std::string_view what) {
  if (d.digest.is_empty()) bad(what, "digest", "is empty");
  if (!media_types::is_well_formed(d.media_type)) bad(what, "mediaType", "is not a valid media type");
  if (d.size < 0) bad(what, "size", "must be a non-negative integer");
}

void put_common(json& j, const std::string& artifact_type, const std::optional<Descriptor>& subject,
                const std::map<std::string, std::string>& annotations) {
  if (!artifact_type.empty()) j["artifactType"] = artifact_type;
  if (subject) j["subject"] = oci::to_json(*subject);
  if (!annotations.empty()) j["annotations"] = annotations;
}

}  // namespace

Manifest Manifest::parse(std::string_view bytes, std::string_view what, std::string_view expected_media_type) {
  json j = parse_object(bytes, what);
  check_schema_version(j, what);
  Manifest m;
  m.media_type = media_type_of(j, what, expected_media_type, media_types::is_manifest, "an image manifest",
                               media_types::kOciManifest);
  if (j.contains("manifests")) bad(what, "manifests", "must not appear in an image manifest");
  auto cfg = j.find("config");
  if (cfg == j.end()) bad(what, "config", "is missing");
  m.config = descriptor_from_json(*cfg, std::string(what) + " config");
  if (!media_types::is_well_formed(m.config.media_type)) bad(what, "config.mediaType", "is not a valid media type");
  m.layers = descriptors_from(j, "layers", what);
  m.artifact_type = opt_string(j, "artifactType", what);
  if (auto it = j.find("subject"); it != j.end() && !it->is_null())
    m.subject = descriptor_from_json(*it, std::string(what) + " subject");
  m.annotations = annotations_from(j, what);
  return m;
}

bool Manifest::is_docker() const { return media_type == media_types::kDockerManifest; }

std::string Manifest::to_json() const {
  const std::string_view what = "manifest";
  if (schema_version != 2) bad(what, "schemaVersion", "must be 2");
  if (!media_type.empty() && !media_types::is_manifest(media_type)) bad(what, "mediaType", "is not a manifest type");
  check_descriptor_for_write(config, "manifest config");
  for (auto& l : layers) check_descriptor_for_write(l, "manifest layer");
  if (!artifact_type.empty() && !media_types::is_well_formed(artifact_type))
    bad(what, "artifactType", "is not a valid media type");
  json j = {{"schemaVersion", schema_version}};
  if (!media_type.empty()) j["mediaType"] = media_type;
  j["config"] = oci::to_json(config);
  json ls = json::array();
  for (auto& l : layers) ls.push_back(oci::to_json(l));
  j["layers"] = std::move(ls);
  put_common(j, artifact_type, subject, annotations);
  return j.dump();
}

Index Index::parse(std::string_view bytes, std::string_view what, std::string_view expected_media_type) {
  json j = parse_object(bytes, what);
  check_schema_version(j, what);
  Index x;
  x.media_type =
      media_type_of(j, what, expected_media_type, media_types::is_index, "an image index", media_types::kOciIndex);
  if (j.contains("config")) bad(what, "config", "must not appear in an image index");
  x.manifests = descriptors_from(j, "manifests", what);
  x.artifact_type = opt_string(j, "artifactType", what);
  if (auto it = j.find("subject"); it != j.end() && !it->is_null())
    x.subject = descriptor_from_json(*it, std::string(what) + " subject");
  x.annotations = annotations_from(j, what);
  return x;
}

std::string Index::to_json() const {
  const std::string_view what = "index";
  if (schema_version != 2) bad(what, "schemaVersion", "must be 2");
  if (!media_type.empty() && !media_types::is_index(media_type)) bad(what, "mediaType", "is not an index type");
  for (auto& m : manifests) check_descriptor_for_write(m, "index manifest");
  json j = {{"schemaVersion", schema_version}};
  if (!media_type.empty()) j["mediaType"] = media_type;
  json ms = json::array();
  for (auto& m : manifests) ms.push_back(oci::to_json(m));
  j["manifests"] = std::move(ms);
  put_common(j, artifact_type, subject, annotations);
  return j.dump();
}

std::string sniff_media_type(std::string_view bytes, std::string_view what) {
  json j = parse_object(bytes, what);
  if (auto it = j.find("mediaType"); it != j.end() && it->is_string()) return it->get<std::string>();
  if (j.contains("manifests")) return std::string(media_types::kOciIndex);
  if (j.contains("config")) return std::string(media_types::kOciManifest);
  throw Error(ErrorKind::InvalidArgument, std::string(what) + ": field \"mediaType\" is missing and the shape is neither a manifest nor an index");
}

void verify_blob_bytes(const Descriptor& desc, std::string_view bytes, std::string_view what) {
  if (static_cast<std::int64_t>(bytes.size()) != desc.size)
    throw Error(ErrorKind::DataLoss, std::string(what) + " " + desc.digest.str() + ": size is " +
                                         std::to_string(bytes.size()) + " bytes, descriptor says " +
                                         std::to_string(desc.size));
  Digest actual = Digest::of(bytes);
  if (actual != desc.digest)
    throw Error(ErrorKind::DataLoss, std::string(what) + ": content digest " + actual.str() +
                                         " does not match " + desc.digest.str());
}

}  // namespace cbuild::oci
