// `cbuild build [OPTIONS] CONTEXT` (also the default command: `cbuild -f Dockerfile -t x .`).
// Flags follow `docker build` / buildah; everything is turned into builder::BuildOptions and
// handed to builder::build(). Prints the image ID on stdout (like `docker build -q`, and as the
// last line otherwise) unless an --output writes its tar there; progress always on stderr.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "builder/plan/build_options.h"
#include "builder/executor.h"
#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/progress.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/descriptor.h"
#include "oci/tar_writer.h"
#include "overlay/isolation.h"
#include "overlay/user_namespace.h"
#include "registry-client/reference.h"

namespace cbuild::cli {

namespace {

struct BuildFlags {
  std::string context;
  std::string file;
  std::vector<std::string> tags, build_args, labels, secrets, outputs, cache_to, cache_from;
  std::string target, platform, network = "host", format = "oci", compression = "gzip", iidfile, metadata_file;
  std::string progress = "auto";
  std::string isolation = "auto";
  bool isolation_given = false;
  int compression_level = -1;
  int jobs = 0;
  bool no_cache = false, pull = false, quiet = false, push = false;
  bool format_given = false;

  static std::string compression_name(builder::Compression c) {
    return c == builder::Compression::Zstd ? "zstd" : c == builder::Compression::Uncompressed ? "uncompressed" : "gzip";
  }
};

// buildx passes the environment's SOURCE_DATE_EPOCH as a build-arg unless one is given, so an
// explicit --build-arg wins. Empty means unset, as for the variable.
std::optional<std::int64_t> source_date_epoch(const std::map<std::string, std::string>& build_args) {
  try {
    if (auto it = build_args.find("SOURCE_DATE_EPOCH"); it != build_args.end() && !it->second.empty())
      return oci::parse_source_date_epoch(it->second, "--build-arg SOURCE_DATE_EPOCH");
    return oci::source_date_epoch_from_env();
  } catch (const Error& e) {
    throw UsageError(e);
  }
}

// One target platform, normalized ("arm64" is linux/arm64), checked before any work. A list is
// what buildx turns into a multi-platform build, which cbuild cannot make: refused, never
// read as one odd platform.
std::string target_platform(const std::string& flag) {
  if (flag.empty()) return flag;
  if (flag.find(',') != std::string::npos)
    throw UsageError(Error(ErrorKind::InvalidArgument,
                           "--platform " + quote(flag) + ": multi-platform builds are not supported (give one platform)"));
  try {
    return oci::Platform::parse(flag).str();
  } catch (const Error& e) {
    throw UsageError(Error(e.kind(), "--platform: " + e.message()));
  }
}

builder::BuildOptions to_options(const BuildFlags& f, const GlobalOptions& g) {
  builder::BuildOptions o;
  o.context = f.context;
  o.dockerfile = f.file;
  o.tags = f.tags;
  for (const auto& a : f.build_args)
    if (auto kv = builder::parse_key_value(a, "--build-arg", true)) o.build_args[kv->first] = kv->second;
  for (const auto& l : f.labels)
    if (auto kv = builder::parse_key_value(l, "--label", false)) o.labels[kv->first] = kv->second;
  o.target = f.target;
  o.no_cache = f.no_cache;
  o.pull = f.pull;
  o.platform = target_platform(f.platform);
  if (f.network == "host" || f.network == "default") o.network = builder::NetworkMode::Host;
  else if (f.network == "none") o.network = builder::NetworkMode::None;
  else throw Error(ErrorKind::InvalidArgument, "--network: unsupported mode " + quote(f.network) + " (expected host or none)");
  for (const auto& s : f.secrets) o.secrets.push_back(builder::parse_secret(s));
  o.format = f.format == "docker" ? builder::ImageFormat::Docker : builder::ImageFormat::Oci;
  o.format_set = f.format_given;
  o.compression = f.compression == "zstd"           ? builder::Compression::Zstd
                  : f.compression == "uncompressed" ? builder::Compression::Uncompressed
                                                    : builder::Compression::Gzip;
  o.compression_level = f.compression_level;
  o.iidfile = f.iidfile;
  o.quiet = f.quiet;
  if (f.quiet || f.progress == "quiet") o.progress = builder::ProgressMode::Quiet;
  else if (f.progress == "plain") o.progress = builder::ProgressMode::Plain;
  else if (f.progress == "tty") o.progress = builder::ProgressMode::Tty;
  o.push = f.push;
  for (const auto& out : f.outputs) o.outputs.push_back(builder::parse_output(out));
  try {
    for (const auto& c : f.cache_to) o.cache_to.push_back(builder::parse_cache_spec(c, true));
    for (const auto& c : f.cache_from) o.cache_from.push_back(builder::parse_cache_spec(c, false));
  } catch (const Error& e) {
    throw UsageError(e);
  }
  for (const auto* list : {&o.cache_to, &o.cache_from})
    for (const auto& c : *list)
      if (c.type == builder::CacheSpec::Type::Registry && !registry::Reference::try_parse(c.ref))
        throw UsageError(Error(ErrorKind::InvalidArgument, std::string(list == &o.cache_to ? "--cache-to " : "--cache-from ") +
                                                               quote(c.text) + ": " + quote(c.ref) +
                                                               " is not a valid image reference"));
  for (const auto& c : o.cache_to) {
    // The cache's layers are the build's own layers (so a push of the image mounts them):
    // another compression would need other layers, so it is refused rather than re-encoded.
    if (c.compression && *c.compression != o.compression)
      throw UsageError(Error(ErrorKind::InvalidArgument,
                             "--cache-to " + quote(c.text) + ": compression=" + f.compression_name(*c.compression) +
                                 " differs from the layers this build writes (--compression " + f.compression +
                                 "); give the same --compression"));
  }
  // The inline records travel in the image: an image nothing names or exports (no -t, or -o
  // giving only the files) cannot be a --cache-from, so the records would go nowhere.
  bool image_out = o.push || (o.outputs.empty() && !o.tags.empty()) ||
                   std::any_of(o.outputs.begin(), o.outputs.end(),
                               [](const builder::OutputSpec& out) { return out.type != builder::OutputSpec::Type::Local; });
  for (const auto& c : o.cache_to)
    if (c.type == builder::CacheSpec::Type::Inline && !image_out)
      throw UsageError(Error(ErrorKind::InvalidArgument,
                             "--cache-to " + quote(c.text) + ": the inline cache travels in the image, and this build "
                                                            "outputs none; give -t NAME (with --push to share it) or an "
                                                            "image output (-o type=image|registry|oci|docker)"));
  try {
    builder::image_format(o);  // only to refuse contradicting flags as a usage error, before any work
  } catch (const Error& e) {
    throw UsageError(e);
  }
  o.source_date_epoch = source_date_epoch(o.build_args);
  o.tls_verify = g.tls_verify;
  o.tls_verify_set = g.tls_verify_set;
  o.root = g.resolved_root();
  o.jobs = f.jobs;
  return o;
}

// buildx's --metadata-file keys, so CI scripts that read the pushed digest keep working.
std::string metadata_json(const builder::BuildResult& r) {
  nlohmann::json j{{"containerimage.config.digest", r.image_id}, {"containerimage.digest", r.manifest_digest}};
  std::string names;
  for (const auto& p : r.pushed) names += (names.empty() ? "" : ",") + p.reference;
  if (!names.empty()) j["image.name"] = names;
  nlohmann::json pushed = nlohmann::json::array();
  for (const auto& p : r.pushed) pushed.push_back({{"name", p.reference}, {"digest", p.digest}});
  if (!r.pushed.empty()) j["cbuild.pushed"] = pushed;
  return j.dump(2) + "\n";
}

// The level --isolation asks for (else CBUILD_ISOLATION, as buildah's BUILDAH_ISOLATION, so a
// CI job can pick it once for every build), or the one this process can use; says once on
// stderr which one is in use and why when it is not the plain root one.
overlay::Isolation resolve_isolation(const BuildFlags& f) {
  std::string value = f.isolation, source = "--isolation";
  if (const char* e = std::getenv("CBUILD_ISOLATION"); !f.isolation_given && e && *e)
    value = e, source = "CBUILD_ISOLATION";
  overlay::IsolationRequest request;
  try {
    request = overlay::parse_isolation(value, source);
  } catch (const Error& e) {
    throw UsageError(e);
  }
  // A non-root user is already in the user namespace main() made: there the chroot level (for
  // a container's root that may not make one) gives other layers than overlay, so refuse it.
  if (const auto& m = overlay::current_id_mapping();
      m && m->outer_uid != 0 && request == overlay::IsolationRequest::Chroot)
    throw Error(ErrorKind::FailedPrecondition,
                source + "=chroot is for a container's root that may not create user namespaces; as a "
                "non-root user cbuild builds in its own user namespace (--isolation=userns, the default)");
  overlay::IsolationChoice c = overlay::choose_isolation(request, overlay::probe_isolation(), source);
  if (c.level == overlay::Isolation::Chroot || c.enter_userns) std::cerr << "cbuild: isolation " << c.reason << "\n";
  // Root without CAP_SYS_ADMIN (a non-root user entered in main()): still one thread here.
  if (c.enter_userns) overlay::enter_user_namespace();
  return c.level;
}

int run_build(const BuildFlags& f, const GlobalOptions& g) {
  builder::BuildOptions o = to_options(f, g);
  o.isolation = resolve_isolation(f);
  auto progress = make_progress(o.progress);
  builder::BuildResult r = builder::build(o, *progress);
  progress.reset();  // the TTY renderer clears its live lines before the ID is printed
  if (!o.iidfile.empty()) write_file_atomic(o.iidfile, r.image_id);
  if (!f.metadata_file.empty()) write_file_atomic(f.metadata_file, metadata_json(r));
  // With dest=- stdout carries the tar and nothing else (docker prints no ID there either).
  if (!r.wrote_stdout) std::cout << r.image_id << "\n";
  return 0;
}

CommandRegistration reg{{
    .name = "build",
    .help = "Build an image from a Dockerfile (the default command)",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      auto f = std::make_shared<BuildFlags>();
      app.add_option("context", f->context, "Build context: a directory, or - for a tar on stdin")->required();
      app.add_option("-f,--file", f->file, "Dockerfile (default CONTEXT/Dockerfile; - reads stdin)");
      app.add_option("-t,--tag", f->tags, "Name and tag for the image (repeatable)")->allow_extra_args(false);
      app.add_option("--build-arg", f->build_args, "Set a build-time variable KEY=VALUE (repeatable)")->allow_extra_args(false);
      app.add_option("--target", f->target, "Build this stage and what it needs, not the last one");
      app.add_flag("--no-cache", f->no_cache, "Do not use the build cache");
      app.add_flag("--pull", f->pull, "Always fetch the base images, even if present");
      app.add_option("--label", f->labels, "Set an image label KEY=VALUE (repeatable)")->allow_extra_args(false);
      app.add_option("--platform", f->platform, "Target platform os/arch[/variant]: one; RUN needs it to be the host's or emulated");
      app.add_option("--network", f->network, "Network for RUN: host (default) or none");
      auto* isolation = app.add_option(
          "--isolation", f->isolation,
          "How RUN steps and snapshots are isolated: auto (default: what this process may do), userns "
          "(namespaces and overlay mounts) or chroot (no namespaces, no mounts: for unprivileged containers); "
          "env CBUILD_ISOLATION");
      app.add_option("--secret", f->secrets, "Secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR")->allow_extra_args(false);
      auto* format = app.add_option("--format", f->format, "Image format: oci (default; docker with -o type=docker) or docker")
                         ->check(CLI::IsMember({"oci", "docker"}));
      app.add_option("--compression", f->compression, "Layer compression: gzip (default), zstd or uncompressed")
          ->check(CLI::IsMember({"gzip", "zstd", "uncompressed"}));
      app.add_option("--compression-level", f->compression_level, "Compression level (default: the codec's)");
      app.add_option("--jobs", f->jobs, "Stages built at the same time (default: the number of cores, at least 2; 1: serial)")
          ->check(CLI::NonNegativeNumber);
      app.add_option("--iidfile", f->iidfile, "Write the image ID to this file");
      app.add_option("--metadata-file", f->metadata_file,
                     "Write the image ID, manifest digest and pushed names/digests to this file (JSON, buildx keys)");
      app.add_flag("-q,--quiet", f->quiet, "Print only the image ID");
      app.add_option("--progress", f->progress, "Progress output: auto, tty, plain or quiet")
          ->check(CLI::IsMember({"auto", "tty", "plain", "quiet"}));
      app.add_flag("--push", f->push, "Also push the image to the registry of each -t name (type=image,push=true)");
      app.add_option("-o,--output", f->outputs,
                     "Export instead of tagging in the store (repeatable): type=oci|docker,dest=FILE|- ; "
                     "type=oci,dest=DIR,tar=false ; type=local,dest=DIR (or -o DIR, -o - for a tar) ; "
                     "type=registry[,name=REF] ; type=image[,name=REF][,push=true]")
          ->allow_extra_args(false);
      app.add_option("--cache-to", f->cache_to,
                     "Export the build cache (repeatable): type=registry,ref=REF[,mode=min|max] ; "
                     "type=local,dest=DIR[,mode=min|max] ; type=inline (in the image's config)")
          ->allow_extra_args(false);
      app.add_option("--cache-from", f->cache_from,
                     "Import a build cache, tried in order when the local cache misses (repeatable): "
                     "type=registry,ref=REF (or REF: a cache, or an image built with --cache-to type=inline) ; "
                     "type=local,src=DIR")
          ->allow_extra_args(false);
      return [f, &g, format, isolation] {
        f->format_given = format->count() > 0;
        f->isolation_given = isolation->count() > 0;
        return run_build(*f, g);
      };
    }}};

}  // namespace
}  // namespace cbuild::cli
