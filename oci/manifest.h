// Manifest and Index — the OCI image manifest / image index (and Docker schema 2 manifest /
// manifest list, which have the same shape) as plain structs, with JSON in and out.
//
// parse() validates and throws Error{InvalidArgument} naming the document (`what`) and the field:
// not JSON, schemaVersion other than 2, a mediaType that is not a manifest (index) type or not
// the one the referring descriptor announced, a missing or malformed descriptor field.
// to_json() produces the bytes cbuild writes for documents it creates; it validates first.
// Documents that came from elsewhere are never re-serialized: keep their bytes, parse to read.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/descriptor.h"

namespace cbuild::oci {

struct Manifest {
  int schema_version = 2;
  std::string media_type;  // may be empty in an OCI manifest that omits the (optional) field
  std::string artifact_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;

  // `expected_media_type`: the media type of the descriptor that pointed here, if known.
  static Manifest parse(std::string_view bytes, std::string_view what = "manifest",
                        std::string_view expected_media_type = {});
  std::string to_json() const;
  bool is_docker() const;
};

struct Index {
  int schema_version = 2;
  std::string media_type;
  std::string artifact_type;
  std::vector<Descriptor> manifests;
  std::optional<Descriptor> subject;
  std::map<std::string, std::string> annotations;

  static Index parse(std::string_view bytes, std::string_view what = "index",
                     std::string_view expected_media_type = {});
  std::string to_json() const;
};

// The media type a manifest-like document declares (its "mediaType"), or, when absent, what
// its shape says (a "manifests" array → OCI index, a "config" → OCI manifest). Throws
// InvalidArgument naming `what` when the bytes are not a JSON object.
std::string sniff_media_type(std::string_view bytes, std::string_view what = "document");

// Checks that `bytes` are what `desc` names: size first, then digest. Throws Error{DataLoss}
// naming `what`.
void verify_blob_bytes(const Descriptor& desc, std::string_view bytes, std::string_view what);

}  // namespace cbuild::oci
