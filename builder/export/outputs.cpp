#include "builder/export/outputs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "builder/export/local_export.h"
#include "builder/export/staged_dir.h"
#include "oci/base/error.h"
#include "oci/base/fs.h"
#include "oci/docker_archive.h"
#include "oci/manifest.h"
#include "registry-client/blob_origins.h"
#include "registry-client/connect.h"
#include "registry-client/pusher.h"
#include "registry-client/reference.h"

namespace cbuild::builder {

namespace fs = std::filesystem;
using Type = OutputSpec::Type;

namespace {

const char* type_name(Type t) {
  switch (t) {
    case Type::Image: return "image";
    case Type::Oci: return "oci";
    case Type::Docker: return "docker";
    case Type::Local: return "local";
    case Type::Registry: return "registry";
  }
  return "?";
}

std::string shown(const OutputSpec& s) {
  std::string out = std::string("--output type=") + type_name(s.type);
  if (!s.name.empty()) out += ",name=" + s.name;
  if (!s.dest.empty()) out += ",dest=" + s.dest;
  if (!s.tar) out += ",tar=false";
  return out;
}

std::string normalize(const std::string& name, const std::string& flag) {
  try {
    return registry::Reference::parse(name).str();
  } catch (Error& e) {
    e.with_context(flag);
    throw;
  }
}

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

// Cheap checks of a file or directory dest, so an impossible one fails before the build runs
// rather than after it. The export itself still reports anything that changed meanwhile.
void check_dest(const FileOutput& f) {
  if (f.dest == "-") return;
  struct stat st {};
  if (::stat(f.dest.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return;  // created by the export (its parents too)
    throw Error(kind_from_errno(err), f.shown + ": " + quote(f.dest) + ": " + std::strerror(err), err);
  }
  bool want_dir = f.type == Type::Local || !f.tar;
  if (want_dir && !S_ISDIR(st.st_mode))
    throw Error(ErrorKind::FailedPrecondition, f.shown + ": " + quote(f.dest) + " exists and is not a directory");
  if (!want_dir && S_ISDIR(st.st_mode))
    throw Error(ErrorKind::FailedPrecondition,
                f.shown + ": " + quote(f.dest) + " is a directory" +
                    (f.type == Type::Oci ? " (add tar=false to write an OCI layout directory)" : ""));
}

void export_file(const FileOutput& f, oci::LayoutStore& store, const WrittenImage& image) {
  oci::Descriptor target = image.manifest;
  target.annotations.clear();
  std::vector<oci::ArchiveImage> images{{f.names, target}};
  if (f.type == Type::Local) {
    oci::Manifest m = oci::Manifest::parse(image.manifest_bytes, "built manifest", image.manifest.media_type);
    if (f.dest == "-") export_local_tar(store, m.layers, STDOUT_FILENO);
    else export_local_dir(store, m.layers, f.dest);
    return;
  }
  if (!f.tar) {
    StagedDir staged(f.dest);
    oci::save_layout(store, images, staged.path());
    staged.commit();
    return;
  }
  auto format = f.type == Type::Docker ? oci::ArchiveFormat::Docker : oci::ArchiveFormat::Oci;
  if (f.dest == "-") {
    oci::save_archive(store, images, format, STDOUT_FILENO);
    return;
  }
  fs::path dest = f.dest;
  if (dest.has_parent_path()) make_dirs(dest.parent_path());
  AtomicFile out(dest);
  oci::save_archive(store, images, format, out.fd());
  out.commit();
}

PushedImage push(const std::string& name, oci::LayoutStore& store, const WrittenImage& image, const BuildOptions& o,
                 Progress& progress) {
  registry::Reference ref = registry::Reference::parse(name);
  progress.note("pushing " + ref.str());
  auto transport = registry::connect(ref, o.tls_verify);
  registry::BlobOrigins origins(store.root());
  registry::PushOptions po;
  po.origins = &origins;
  po.log = [&progress](const std::string& line) { progress.note(line); };
  registry::PushResult res = registry::Pusher(*transport, store, po).push(image.manifest, ref);
  progress.note("pushed " + ref.str() + "@" + res.digest.str());
  return PushedImage{.reference = ref.str(), .digest = res.digest.str()};
}

}  // namespace

OutputPlan plan_outputs(const BuildOptions& o) {
  std::vector<std::string> tags;
  for (const auto& t : o.tags) add_unique(tags, normalize(t, "-t"));

  // Each output with the words that name it in messages.
  std::vector<std::pair<OutputSpec, std::string>> specs;
  for (const auto& s : o.outputs) specs.emplace_back(s, shown(s));
  if (specs.empty()) specs.emplace_back(OutputSpec{.type = Type::Image}, "-t");
  if (o.push) {
    auto is_image = [](const OutputSpec& s) { return s.type == Type::Image || s.type == Type::Registry; };
    if (std::none_of(specs.begin(), specs.end(), [&](const auto& p) { return is_image(p.first); }))
      specs.emplace_back(OutputSpec{.type = Type::Image}, "--push");
    for (auto& [s, what] : specs)
      if (is_image(s)) {
        s.push = true;
        if (what == "-t") what = "--push";
      }
  }

  OutputPlan plan;
  int to_stdout = 0;
  for (const auto& [s, what] : specs) {
    std::vector<std::string> names = tags;
    if (!s.name.empty()) names = {normalize(s.name, what)};
    switch (s.type) {
      case Type::Image:
      case Type::Registry:
        for (const auto& n : names) add_unique(plan.store_tags, n);
        if (s.push && names.empty())
          throw Error(ErrorKind::InvalidArgument, what + ": no name to push to (give -t NAME or --output type=registry,name=NAME)");
        if (s.push)
          for (const auto& n : names) add_unique(plan.push, n);
        break;
      case Type::Oci:
      case Type::Docker:
      case Type::Local: {
        FileOutput f{.type = s.type, .dest = s.dest, .tar = s.tar, .names = names, .shown = shown(s)};
        if (!s.tar && s.type != Type::Oci)
          throw Error(ErrorKind::InvalidArgument, f.shown + ": tar=false is only supported with type=oci");
        if (s.dest == "-") {
          if (!s.tar) throw Error(ErrorKind::InvalidArgument, f.shown + ": an OCI layout directory cannot go to stdout");
          ++to_stdout;
        }
        check_dest(f);
        plan.files.push_back(std::move(f));
        break;
      }
    }
  }
  if (to_stdout > 1) throw Error(ErrorKind::InvalidArgument, "--output: only one output can write to stdout (dest=-)");
  if (to_stdout == 1 && ::isatty(STDOUT_FILENO))
    throw Error(ErrorKind::InvalidArgument,
                "--output dest=-: refusing to write a tar archive to a terminal (redirect stdout, or give dest=FILE)");
  plan.writes_stdout = to_stdout == 1;
  plan.format = image_format(o);
  return plan;
}

std::vector<PushedImage> export_outputs(const OutputPlan& plan, oci::LayoutStore& store, const WrittenImage& image,
                                        const BuildOptions& options, Progress& progress) {
  if (!plan.store_tags.empty()) {
    std::vector<std::pair<std::string, oci::Descriptor>> tags;
    for (const auto& n : plan.store_tags) tags.emplace_back(n, image.manifest);
    store.set_tags(tags);
  }
  for (const auto& f : plan.files) {
    progress.note("exporting to " + f.shown.substr(std::string_view("--output ").size()));
    try {
      export_file(f, store, image);
    } catch (Error& e) {
      if (e.kind() != ErrorKind::Cancelled) e.with_context(f.shown);
      throw;
    }
  }
  std::vector<PushedImage> pushed;
  for (const auto& name : plan.push) {
    try {
      pushed.push_back(push(name, store, image, options, progress));
    } catch (Error& e) {
      if (e.kind() != ErrorKind::Cancelled) e.with_context("push " + name);
      throw;
    }
  }
  return pushed;
}

}  // namespace cbuild::builder
