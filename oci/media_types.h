// Media types of OCI image-spec v1.1 and Docker image manifest v2 schema 2, and helpers that
// classify them. Constants only; no state, thread-safe.
#pragma once

#include <string_view>

namespace cbuild::oci {
// Inline: the constants are reachable as oci::kOciManifest and as oci::media_types::kOciManifest.
inline namespace media_types {

inline constexpr std::string_view kOciDescriptor = "application/vnd.oci.descriptor.v1+json";
inline constexpr std::string_view kOciLayoutHeader = "application/vnd.oci.layout.header.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kOciEmpty = "application/vnd.oci.empty.v1+json";
inline constexpr std::string_view kOciLayerNondistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr std::string_view kOciLayerNondistributableGzip =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr std::string_view kOciLayerNondistributableZstd =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerLayer = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kDockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

// The empty blob "{}" (used as an artifact's config placeholder).
inline constexpr std::string_view kEmptyJsonDigest =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

enum class LayerCompression { None, Gzip, Zstd };

// An image manifest (OCI or Docker schema 2).
bool is_manifest(std::string_view mt) noexcept;
// An index / manifest list (OCI or Docker).
bool is_index(std::string_view mt) noexcept;
// An image config (OCI or Docker).
bool is_config(std::string_view mt) noexcept;
// A layer of any kind we can unpack (OCI, Docker, non-distributable and foreign ones).
bool is_layer(std::string_view mt) noexcept;
// Whether a layer must not be pushed (non-distributable / foreign).
bool is_nondistributable_layer(std::string_view mt) noexcept;
// The compression a layer media type declares. Throws Error{InvalidArgument} if not a layer.
LayerCompression layer_compression(std::string_view mt);
// The OCI layer media type for a compression.
std::string_view oci_layer_type(LayerCompression c) noexcept;
// The Docker layer media type for a compression (Docker has no zstd type; it uses OCI's).
std::string_view docker_layer_type(LayerCompression c) noexcept;
// Whether `mt` matches type/subtype with the characters defs-descriptor.json allows.
bool is_well_formed(std::string_view mt) noexcept;

}  // namespace media_types
}  // namespace cbuild::oci
