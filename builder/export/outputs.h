// Outputs — what `cbuild build` does with the image once it is written to the store: BuildKit's
// exporters, selected with --output/-o and --push as `docker buildx build` does.
//
//   type=image (the default)      tag the image in the local store with its names
//   type=image,push=true, --push  tag it, and push every name with the registry client
//   type=registry                 BuildKit's alias of type=image,push=true
//   type=oci,dest=FILE|-          an OCI archive (oci-layout, index.json, blobs/)
//   type=oci,dest=DIR,tar=false   the same as an OCI image layout directory
//   type=docker,dest=FILE|-       a docker-archive (manifest.json too) that `docker load` reads;
//                                 the build's image is then in Docker format (image_format())
//   type=local,dest=DIR, -o DIR   the final stage's filesystem, flattened (local_export.h)
//   type=local,dest=-, -o -       the same as a tar stream on stdout
//
// Names: an output's name= when given, else the -t tags (normalized by docker's rules). The
// archives carry them (index.json annotations, manifest.json RepoTags); without any, an archive
// holds one unnamed image, as docker's does.
//
// The choices, following buildx (not buildah, whose -o only adds to the store):
//  - Giving --output replaces the default image output: `-t app -o type=oci,dest=a.tar` writes
//    a.tar with app inside, and does not tag app in the store. The image's blobs are in the
//    store all the same (they are the build cache; untagged, prune may collect them). Add
//    `-o type=image` to get both.
//  - --push turns push on for every image/registry output, and adds one (with the -t names)
//    when the only outputs are files, as buildx 0.13+ does. Pushing without a name is an error.
//    With a push, the image's tags in the store may name layers the store holds lazily (still
//    in the registry a cache hit or a base came from; oci/layout_store.h): the pusher reads a
//    blob only when the target registry neither has it nor can mount it, and file outputs
//    read through the store's blob fetcher.
//  - At most one output may write to stdout, never to a terminal, and then the build does not
//    print the image ID there (BuildResult::wrote_stdout); progress always goes to stderr.
//
// Lifecycle: plan_outputs() runs before the build, so a bad flag, a bad name or a tar bound
// for a terminal fails before any work. export_outputs() runs after write_image(): store tags
// first, then files in the order given, then pushes. A file or directory appears at its dest
// only complete (written to a temp name, then renamed; staged_dir.h). The first failure stops
// the export with one cbuild::Error naming the output (`--output type=oci,dest=…: …`) or the
// reference (`push 127.0.0.1:5000/app:1: …`); tags already set stay (the build succeeded).
#pragma once

#include <string>
#include <vector>

#include "builder/plan/build_options.h"
#include "builder/export/image_writer.h"
#include "builder/plan/progress.h"
#include "oci/layout_store.h"

namespace cbuild::builder {

struct FileOutput {
  OutputSpec::Type type = OutputSpec::Type::Oci;  // Oci, Docker or Local
  std::string dest;                               // "-" is stdout
  bool tar = true;                                // Oci only: false writes a layout directory
  std::vector<std::string> names;                 // full normalized references
  std::string shown;                              // "--output type=oci,dest=out.tar", for messages
};

struct OutputPlan {
  std::vector<std::string> store_tags;  // full normalized references, deduplicated
  std::vector<std::string> push;        // references to push to, deduplicated
  std::vector<FileOutput> files;
  bool writes_stdout = false;
  ImageFormat format = ImageFormat::Oci;  // of the one image every output carries
};

// Resolves options.outputs, options.push and options.tags into what to do (see above). Throws
// Error{InvalidArgument} naming the flag: a bad name, --push without one, a second output to
// stdout, stdout being a terminal, tar=false on something else than a type=oci directory,
// --format oci with type=docker.
OutputPlan plan_outputs(const BuildOptions& options);

struct PushedImage {
  std::string reference;  // full normalized reference
  std::string digest;     // "sha256:…" of the manifest, as the registry confirmed it
};

// Carries out `plan` for the image `image` (already durable in `store`). Returns the pushes
// made. Reports each export to `progress` as a note. Throws cbuild::Error (see above).
std::vector<PushedImage> export_outputs(const OutputPlan& plan, oci::LayoutStore& store, const WrittenImage& image,
                                        const BuildOptions& options, Progress& progress);

}  // namespace cbuild::builder
