#include "registry-client/manifest_fetch.h"

#include <nlohmann/json.hpp>

#include "oci/base/error.h"
#include "oci/digest.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "registry-client/registry_error.h"

namespace cbuild::registry {

namespace {

constexpr std::size_t kMaxManifest = 4u << 20;  // what registries accept as manifest size

std::string bare_type(std::string_view ct) {
  auto s = ct.substr(0, ct.find(';'));
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return std::string(s);
}

bool is_schema1(std::string_view mt) {
  return mt == "application/vnd.docker.distribution.manifest.v1+json" ||
         mt == "application/vnd.docker.distribution.manifest.v1+prettyjws";
}

}  // namespace

std::string repo_scope(std::string_view repository, std::string_view actions) {
  return "repository:" + std::string(repository) + ":" + std::string(actions);
}

FetchedManifest fetch_manifest(Transport& t, const Reference& ref, const std::string& tag_or_digest,
                               const std::string& what) {
  Call c;
  c.path = "/v2/" + ref.repository() + "/manifests/" + tag_or_digest;
  c.headers.emplace_back("Accept", kManifestAccept);
  c.scopes = {repo_scope(ref.repository(), "pull")};
  c.what = what;
  HttpResponse r = t.send(c);
  expect_status(r, {200}, what, t.host());
  if (r.body.size() > kMaxManifest)
    throw Error(ErrorKind::ResourceExhausted, what + ": manifest larger than 4 MiB from " + t.host());

  std::string ct = bare_type(r.header("content-type"));
  std::string declared;
  try {
    declared = oci::sniff_media_type(r.body, what);
  } catch (const Error&) {
    if (is_schema1(ct))
      throw Error(ErrorKind::InvalidArgument, what + ": " + t.host() +
                                                  " only has a Docker schema 1 manifest, which cbuild does not support");
    throw Error(ErrorKind::InvalidArgument,
                what + ": " + t.host() + " answered a body that is not a manifest (Content-Type " + quote(ct) + ")");
  }
  if (is_schema1(ct) || is_schema1(declared))
    throw Error(ErrorKind::InvalidArgument,
                what + ": " + t.host() + " only has a Docker schema 1 manifest, which cbuild does not support");
  std::string mt = declared;
  if (oci::media_types::is_manifest(ct) || oci::media_types::is_index(ct)) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    const bool has_mt = j.is_object() && j.contains("mediaType");
    if (has_mt && declared != ct)
      throw Error(ErrorKind::InvalidArgument, what + ": the manifest's mediaType " + quote(declared) +
                                                  " disagrees with Content-Type " + quote(ct));
    mt = ct;
  }
  if (!oci::media_types::is_manifest(mt) && !oci::media_types::is_index(mt))
    throw Error(ErrorKind::InvalidArgument, what + ": unsupported manifest media type " + quote(mt) + " from " + t.host());

  FetchedManifest f;
  f.descriptor.media_type = mt;
  f.descriptor.digest = oci::Digest::of(r.body);
  f.descriptor.size = static_cast<std::int64_t>(r.body.size());
  if (auto h = r.header("docker-content-digest"); !h.empty()) {
    auto hd = oci::Digest::try_parse(h);
    if (hd && hd->algorithm() == "sha256" && *hd != f.descriptor.digest)
      throw Error(ErrorKind::DataLoss, what + ": manifest bytes hash to " + f.descriptor.digest.str() + " but " +
                                           t.host() + " announced " + h);
  }
  if (auto d = oci::Digest::try_parse(tag_or_digest); d && *d != f.descriptor.digest)
    throw Error(ErrorKind::DataLoss,
                what + ": manifest bytes hash to " + f.descriptor.digest.str() + ", not the requested " + d->str());
  // Parse once so a malformed document is refused before anything is stored.
  // The parsed form is not kept: callers parse the stored bytes where they need them.
  if (oci::media_types::is_index(mt)) oci::Index::parse(r.body, what, mt);
  else oci::Manifest::parse(r.body, what, mt);
  f.bytes = std::move(r.body);
  return f;
}

}  // namespace cbuild::registry
