// `cbuild store-roundtrip DIR [--tag NAME]` (hidden; used by scripts/demo.sh): writes DIR as one
// layer through the layer pipeline into the store, adds a config and a manifest, tags it, reads
// every blob back verified, and prints the manifest digest.
#include <iostream>

#include "cli/command.h"
#include "cli/exit_codes.h"
#include "cli/store_open.h"
#include "oci/base/error.h"
#include "oci/layer_writer.h"
#include "oci/media_types.h"
#include "oci/tar_writer.h"
#include "registry-client/reference.h"

namespace cbuild::cli {
namespace {

struct RoundtripOptions {
  std::string dir;
  std::string tag = "cbuild-demo:latest";
};

oci::Descriptor put_json(oci::LayoutStore& store, std::string_view media_type, const std::string& bytes) {
  return oci::Descriptor{.media_type = std::string(media_type), .digest = store.put_blob(bytes),
                         .size = static_cast<std::int64_t>(bytes.size())};
}

int run_roundtrip(const RoundtripOptions& o, const GlobalOptions& g) {
  auto ref = registry::Reference::parse(o.tag);
  auto store = open_store(g);
  auto lease = store->acquire_lease("roundtrip");
  store->set_default_lease(lease);
  oci::LayerWriterOptions lo;
  try {
    lo.clamp_mtime = oci::source_date_epoch_from_env();
  } catch (const Error& e) {
    throw UsageError(e);
  }
  oci::LayerResult layer = oci::write_layer(o.dir, *store, lo);
  oci::ImageConfig cfg;
  oci::Platform host = oci::Platform::host();
  cfg.architecture = host.architecture;
  cfg.os = host.os;
  cfg.variant = host.variant;
  cfg.created = oci::rfc3339_utc(lo.clamp_mtime.value_or(0));
  cfg.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  cfg.rootfs.diff_ids = {layer.diff_id};
  cfg.history = {oci::History{.created = cfg.created, .created_by = "cbuild store-roundtrip " + o.dir}};
  oci::Manifest m;
  m.media_type = std::string(oci::kOciManifest);
  m.config = put_json(*store, oci::kOciConfig, cfg.to_json());
  m.layers = {layer.descriptor};
  oci::Descriptor md = put_json(*store, oci::kOciManifest, m.to_json());
  store->set_tag(ref.str(), md);
  store->set_default_lease(nullptr);

  // Read everything back through the verified path.
  StoreImage back = resolve_image(*store, ref.str());
  if (back.manifest_desc.digest != md.digest) throw Error(ErrorKind::Internal, "store-roundtrip: tag resolved to another manifest");
  for (auto& l : back.manifest.layers) {
    auto src = store->open(l.digest);
    std::vector<std::byte> buf(1 << 20);
    while (src->read(buf.data(), buf.size()) != 0) {}
  }
  std::cerr << "layer " << layer.descriptor.digest.str() << " (" << layer.descriptor.size << " bytes, "
            << layer.compressor << "), diff_id " << layer.diff_id.str() << "\n";
  std::cerr << "tagged " << ref.familiar() << " in " << store->root().string() << "\n";
  std::cout << md.digest.str() << "\n";
  return 0;
}

CommandRegistration reg{{
    .name = "store-roundtrip",
    .help = "",
    .setup = [](CLI::App& app, GlobalOptions& g) -> std::function<int()> {
      app.group("");  // hidden from --help: a developer/demo tool
      auto o = std::make_shared<RoundtripOptions>();
      app.add_option("DIR", o->dir, "Directory to store as a one-layer image")->required()->check(CLI::ExistingDirectory);
      app.add_option("--tag", o->tag, "Name for the image");
      return [o, &g] { return run_roundtrip(*o, g); };
    }}};

}  // namespace
}  // namespace cbuild::cli
