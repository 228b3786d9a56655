// BuildOptions — everything `cbuild build` was asked to do, as plain data. The CLI fills it
// from docker/buildah flags (cli/cmd_build.cpp); the executor reads it. No parsing of flag
// syntax happens outside parse_output() / parse_secret(), which name the flag they reject.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "overlay/isolation.h"

namespace cbuild::builder {

enum class ImageFormat { Oci, Docker };
enum class Compression { Gzip, Zstd, Uncompressed };  // --compression: gzip, zstd, uncompressed
enum class NetworkMode { Host, None };
enum class ProgressMode { Auto, Tty, Plain, Quiet };

// --output / -o: one exporter of the built image, as BuildKit names them (what each one does,
// and how they combine with -t and --push, is in builder/export/outputs.h).
struct OutputSpec {
  enum class Type { Image, Oci, Docker, Local, Registry } type = Type::Image;
  std::string dest;  // file or directory; "-" is stdout for tar outputs
  bool tar = true;   // type=oci: false writes a layout directory instead of an archive
  std::string name;  // type=registry / image / oci / docker: the name (default: the -t tags)
  bool push = false; // type=image,push=true; always true for type=registry
};

// --secret id=ID,src=PATH (or env=VAR): made available to RUN --mount=type=secret.
struct SecretSpec {
  std::string id;
  std::string src;  // a file on the host
  std::string env;  // or an environment variable of cbuild's own process
};

// --cache-to / --cache-from: one place a build cache is exported to or imported from, as
// buildx names them (the format is docs/cache.md). type=local is an OCI layout directory,
// type=registry a reference in a registry, type=inline (--cache-to only) the records inside the
// built image's config (mode=min only).
struct CacheSpec {
  enum class Type { Local, Registry, Inline } type = Type::Local;
  std::string ref;           // type=registry
  std::string dir;           // type=local: dest= (--cache-to) or src= (--cache-from)
  bool max = false;          // --cache-to mode=max: every stage's steps (default min: the final image's)
  std::optional<Compression> compression;  // --cache-to compression=, checked against --compression
  std::string text;          // as given, for messages
};

struct BuildOptions {
  std::string context = ".";     // directory, or "-" for a tar on stdin
  std::string dockerfile;        // -f; empty: CONTEXT/Dockerfile; "-": stdin
  std::vector<std::string> tags; // -t, as given (normalized by the executor)
  std::map<std::string, std::string> build_args;  // --build-arg K=V (K alone: from env)
  std::string target;            // --target
  bool no_cache = false;
  bool pull = false;             // --pull: always fetch the base, even if present
  std::map<std::string, std::string> labels;       // --label K=V
  std::string platform;          // --platform os/arch[/variant] (metadata only)
  NetworkMode network = NetworkMode::Host;
  std::vector<SecretSpec> secrets;
  ImageFormat format = ImageFormat::Oci;
  bool format_set = false;       // --format given explicitly (image_format() resolves it)
  Compression compression = Compression::Gzip;
  int compression_level = -1;    // -1: the codec's default
  std::string iidfile;
  bool quiet = false;            // -q: print only the image ID
  ProgressMode progress = ProgressMode::Auto;
  bool push = false;
  std::vector<OutputSpec> outputs;
  std::vector<CacheSpec> cache_to;    // exported in order after the image is written
  std::vector<CacheSpec> cache_from;  // consulted in order when the local cache misses
  std::optional<std::int64_t> source_date_epoch;   // SOURCE_DATE_EPOCH (env or build-arg)
  // Registry settings passed through to pulls and pushes.
  bool tls_verify = true;
  bool tls_verify_set = false;
  std::string root;              // store root (resolved by the CLI)
  // --jobs: independent stages built at the same time; 0: default_jobs() (stage_graph.h),
  // 1: one stage after another.
  int jobs = 0;
  // --isolation, as resolved by the CLI (overlay::choose_isolation): Chroot builds without
  // mounts or namespaces (FsContext::flat).
  overlay::Isolation isolation = overlay::Isolation::Userns;
};

// The format of the image the build writes: --format, except that an -o type=docker output
// makes it Docker (a docker archive carries a Docker config, with Healthcheck, OnBuild and
// Shell; `docker load` keeps them). Throws Error{InvalidArgument} for --format oci given
// explicitly together with -o type=docker, which asks for both at once.
ImageFormat image_format(const BuildOptions& options);

// Parses one --output value ("type=oci,dest=out.tar", "type=local,dest=dir", "out.tar").
// Throws Error{InvalidArgument} naming the flag and the bad key.
OutputSpec parse_output(std::string_view value);
// Parses one --cache-to (`to` true) or --cache-from value: "type=local,dest=DIR[,mode=min|max]",
// "type=local,src=DIR", "type=registry,ref=R[,mode=..][,compression=..][,oci-mediatypes=true]",
// "type=inline[,mode=min]" (--cache-to only), or a bare reference (type=registry). Throws
// Error{InvalidArgument} naming the flag for a bad key or value, and for what cbuild does not do
// (other types, oci-mediatypes=false, type=inline with mode=max or any key of the other types).
CacheSpec parse_cache_spec(std::string_view value, bool to);
// Parses one --secret value: "id=x,src=PATH" (also source=, type=file), "id=x,env=VAR"
// (type=env), or "id=x" alone, which reads the environment variable x as buildx does.
// Throws Error{InvalidArgument} naming the flag.
SecretSpec parse_secret(std::string_view value);
// Parses "KEY=VALUE" (or "KEY", taking VALUE from the environment if set) for --build-arg and
// --label. Returns nullopt for "KEY" when the environment has no such variable.
std::optional<std::pair<std::string, std::string>> parse_key_value(std::string_view value, std::string_view flag,
                                                                   bool value_from_env);

}  // namespace cbuild::builder
