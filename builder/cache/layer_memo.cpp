#include "builder/cache/layer_memo.h"

#include <nlohmann/json.hpp>

#include "oci/base/fs.h"
#include "oci/compression.h"
#include "oci/tar_writer.h"

namespace cbuild::builder {

LayerMemo::LayerMemo(std::filesystem::path root) : dir_(std::move(root) / "cache" / "layers") {}

oci::Digest LayerMemo::key(const oci::Digest& tree, const oci::LayerWriterOptions& o) {
  std::string in = std::string(kVersion) + "\ntar " + oci::tar_writer_id() + "\nencoder " +
                   (o.codec == oci::Codec::None ? std::string("none") : oci::encoder_id(o.codec, o.level)) +
                   "\nframed " + (o.framed ? "1" : "0") + " " + std::to_string(o.min_frame) + " " +
                   std::to_string(o.max_frame) + "\nclamp " + (o.clamp_mtime ? std::to_string(*o.clamp_mtime) : "-") +
                   "\ntree " + tree.str() + "\n";
  return oci::Digest::of(in);
}

std::optional<oci::LayerResult> LayerMemo::find(const oci::Digest& key, const oci::BlobProvider& blobs) const {
  try {
    auto text = read_file_if_exists(dir_ / key.hex(), 1u << 20);
    if (!text) return std::nullopt;
    auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return std::nullopt;
    oci::LayerResult r;
    r.descriptor = oci::descriptor_from_json(j.at("layer"), "layer memo record");
    r.diff_id = oci::Digest::parse(j.at("diff_id").get<std::string>(), "layer memo diff_id");
    r.uncompressed_size = j.at("uncompressed_size").get<std::uint64_t>();
    r.compressor = j.at("compressor").get<std::string>();
    r.frames = j.at("frames").get<std::uint64_t>();
    r.frames_reused = r.frames;
    if (blobs.stat(r.descriptor.digest) != r.descriptor.size) return std::nullopt;
    return r;
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged record is a miss
  }
}

void LayerMemo::put(const oci::Digest& key, const oci::LayerResult& r) noexcept {
  try {
    nlohmann::json j;
    j["layer"] = oci::to_json(r.descriptor);
    j["diff_id"] = r.diff_id.str();
    j["uncompressed_size"] = r.uncompressed_size;
    j["compressor"] = r.compressor;
    j["frames"] = r.frames;
    make_dirs(dir_);
    write_file_atomic(dir_ / key.hex(), j.dump());
  } catch (const std::exception&) {
  }
}

std::size_t LayerMemo::clear() { return remove_files_in(dir_); }

}  // namespace cbuild::builder
