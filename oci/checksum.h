// crc32 — the CRC-32 of gzip/zlib (IEEE, reflected), computed by ISA-L where cbuild was built with
// it (several GB/s with carry-less multiply) and by zlib otherwise; both give the same value.
//
// For detecting damage, not forgery: cbuild uses it where a record in its own store checks
// that bytes it points at are still the bytes it saw (builder/cache/frame_cache.h). Anyone who can
// write those bytes can rewrite the record too, so a cryptographic hash would buy nothing there
// and cost a SHA-256 pass over every reused frame.
#pragma once

#include <cstdint>
#include <span>

namespace cbuild::oci {

std::uint32_t crc32(std::span<const std::byte> data, std::uint32_t seed = 0) noexcept;

}  // namespace cbuild::oci
