#include "builder/plan/build_options.h"

#include <algorithm>
#include <cstdlib>

#include "oci/base/error.h"

namespace cbuild::builder {

namespace {

// Splits "a=b,c=d" into pairs; a bare word becomes (word, "").
std::vector<std::pair<std::string, std::string>> split_csv_pairs(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string_view::npos)
      out.emplace_back(std::string(item), "");
    else
      out.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
  }
  return out;
}

bool truthy(std::string_view v) { return v == "true" || v == "1" || v == "yes" || v.empty(); }

}  // namespace

ImageFormat image_format(const BuildOptions& o) {
  bool docker_output = std::any_of(o.outputs.begin(), o.outputs.end(),
                                   [](const OutputSpec& s) { return s.type == OutputSpec::Type::Docker; });
  if (!docker_output) return o.format;
  if (o.format_set && o.format == ImageFormat::Oci)
    throw Error(ErrorKind::InvalidArgument,
                "--format oci contradicts --output type=docker: a docker archive holds a Docker image "
                "(drop --format, or use --output type=oci for an OCI archive)");
  return ImageFormat::Docker;
}

OutputSpec parse_output(std::string_view value) {
  OutputSpec out;
  if (value.empty()) throw Error(ErrorKind::InvalidArgument, "--output: empty value");
  // docker's shorthand: a bare path means type=local,dest=PATH ("-" means a tar on stdout).
  if (value.find('=') == std::string_view::npos) {
    out.type = OutputSpec::Type::Local;
    out.dest = std::string(value);
    return out;
  }
  bool have_type = false;
  for (auto& [k, v] : split_csv_pairs(value)) {
    if (k == "type") {
      have_type = true;
      if (v == "oci") out.type = OutputSpec::Type::Oci;
      else if (v == "docker") out.type = OutputSpec::Type::Docker;
      else if (v == "local") out.type = OutputSpec::Type::Local;
      else if (v == "registry") out.type = OutputSpec::Type::Registry;
      else if (v == "image") out.type = OutputSpec::Type::Image;
      else
        throw Error(ErrorKind::InvalidArgument,
                    "--output: unknown type " + quote(v) + " (expected oci, docker, local, registry or image)");
    } else if (k == "dest") {
      out.dest = v;
    } else if (k == "tar") {
      out.tar = truthy(v);
    } else if (k == "name") {
      out.name = v;
    } else if (k == "push") {
      out.push = truthy(v);
    } else {
      throw Error(ErrorKind::InvalidArgument, "--output: unknown key " + quote(k) + " in " + quote(value));
    }
  }
  if (!have_type) throw Error(ErrorKind::InvalidArgument, "--output: missing type= in " + quote(value));
  // BuildKit's registry exporter is its image exporter with push=true.
  if (out.type == OutputSpec::Type::Registry) out.push = true;
  bool needs_dest = out.type == OutputSpec::Type::Oci || out.type == OutputSpec::Type::Docker ||
                    out.type == OutputSpec::Type::Local;
  if (needs_dest && out.dest.empty())
    throw Error(ErrorKind::InvalidArgument, "--output: dest= is required in " + quote(value));
  return out;
}

CacheSpec parse_cache_spec(std::string_view value, bool to) {
  const std::string flag = to ? "--cache-to" : "--cache-from";
  auto bad = [&](const std::string& why) { return Error(ErrorKind::InvalidArgument, flag + " " + quote(value) + ": " + why); };
  CacheSpec c;
  c.text = std::string(value);
  if (value.empty()) throw bad("empty value");
  // buildx's shorthand: a bare reference is type=registry,ref=REF.
  if (value.find('=') == std::string_view::npos) {
    c.type = CacheSpec::Type::Registry;
    c.ref = std::string(value);
    return c;
  }
  std::string type;
  std::vector<std::string> keys;  // besides type=, for type=inline
  for (auto& [k, v] : split_csv_pairs(value)) {
    if (k != "type" && k != "mode") keys.push_back(k);
    if (k == "type") {
      type = v;
    } else if (k == "ref") {
      c.ref = v;
    } else if (k == "dest" && to) {
      c.dir = v;
    } else if (k == "src" && !to) {
      c.dir = v;
    } else if (k == "mode" && to) {
      if (v == "max") c.max = true;
      else if (v != "min") throw bad("mode must be min or max, not " + quote(v));
    } else if (k == "compression" && to) {
      if (v == "gzip") c.compression = Compression::Gzip;
      else if (v == "zstd") c.compression = Compression::Zstd;
      else if (v == "uncompressed") c.compression = Compression::Uncompressed;
      else throw bad("compression must be gzip, zstd or uncompressed, not " + quote(v));
    } else if (k == "oci-mediatypes" && to) {
      // The cache is an OCI artifact (artifactType); Docker media types cannot express it.
      if (!truthy(v)) throw bad("oci-mediatypes=false is not supported: the cache is an OCI artifact");
    } else if (k == "image-manifest" && to) {
      // cbuild's cache is always an image manifest (docs/cache.md); false would ask for an index.
      if (!truthy(v)) throw bad("image-manifest=false is not supported: the cache is an OCI image manifest");
    } else {
      throw bad("unknown key " + quote(k));
    }
  }
  if (type == "local") {
    c.type = CacheSpec::Type::Local;
    if (c.dir.empty()) throw bad(to ? "type=local needs dest=DIR" : "type=local needs src=DIR");
    if (!c.ref.empty()) throw bad("ref= is for type=registry");
  } else if (type == "registry") {
    c.type = CacheSpec::Type::Registry;
    if (c.ref.empty()) throw bad("type=registry needs ref=REFERENCE");
    if (!c.dir.empty()) throw bad(std::string(to ? "dest=" : "src=") + " is for type=local");
  } else if (type == "inline" && to) {
    c.type = CacheSpec::Type::Inline;
    // The records live in the image's config and name only the image's layers: the steps of
    // other stages have no layers there (BuildKit's inline cache is min only).
    if (c.max) throw bad("type=inline holds the final image's steps only (mode=min); use type=registry or type=local for mode=max");
    // Its layers are the image's: compression and the rest are the image's flags.
    if (!keys.empty()) throw bad("type=inline takes no " + keys.front() + "= (only mode=min)");
  } else if (type == "inline") {
    throw bad("type=inline is for --cache-to; name the image itself: --cache-from REF");
  } else if (type.empty()) {
    throw bad(to ? "missing type= (local, registry or inline)" : "missing type= (local or registry)");
  } else {
    throw bad("unsupported type " + quote(type) + (to ? " (expected local, registry or inline)" : " (expected local or registry)"));
  }
  return c;
}

SecretSpec parse_secret(std::string_view value) {
  SecretSpec s;
  std::string type;
  for (auto& [k, v] : split_csv_pairs(value)) {
    if (k == "id") s.id = v;
    else if (k == "src" || k == "source") s.src = v;
    else if (k == "env") s.env = v;
    else if (k == "type") type = v;
    else
      throw Error(ErrorKind::InvalidArgument, "--secret: unknown key " + quote(k) + " in " + quote(value));
  }
  if (s.id.empty()) throw Error(ErrorKind::InvalidArgument, "--secret: id= is required in " + quote(value));
  if (!type.empty() && type != "file" && type != "env")
    throw Error(ErrorKind::InvalidArgument, "--secret: unknown type " + quote(type) + " (expected file or env)");
  if (!s.src.empty() && !s.env.empty())
    throw Error(ErrorKind::InvalidArgument, "--secret: give src= or env=, not both, in " + quote(value));
  if (type == "env" && s.env.empty()) s.env = s.src.empty() ? s.id : s.src, s.src.clear();
  if (s.src.empty() && s.env.empty()) s.env = s.id;
  return s;
}

std::optional<std::pair<std::string, std::string>> parse_key_value(std::string_view value, std::string_view flag,
                                                                   bool value_from_env) {
  auto eq = value.find('=');
  std::string key(value.substr(0, eq));
  if (key.empty())
    throw Error(ErrorKind::InvalidArgument, std::string(flag) + ": expected KEY=VALUE, got " + quote(value));
  if (eq != std::string_view::npos) return std::make_pair(key, std::string(value.substr(eq + 1)));
  if (!value_from_env) return std::make_pair(key, std::string());
  if (const char* e = std::getenv(key.c_str())) return std::make_pair(key, std::string(e));
  return std::nullopt;
}

}  // namespace cbuild::builder
