// Digest — a content address ("sha256:<64 lowercase hex>"), and Sha256, an incremental hasher
// over OpenSSL's SHA-256 (the same SHA-NI/AVX code EVP uses) whose state can be saved and
// resumed (Sha256::State). Digest values are always valid: parse() rejects anything else.
// Only sha256 is produced; sha512 digests parse (the spec allows them) so they can be reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cbuild::oci {

class Digest {
 public:
  Digest() = default;  // empty: is_empty() is true; never written out
  // Throws Error{InvalidArgument} naming `what` ("manifest config digest", …) when malformed.
  static Digest parse(std::string_view s, std::string_view what = "digest");
  static std::optional<Digest> try_parse(std::string_view s);
  // "sha256:" + hex; hex must be 64 lowercase hex digits.
  static Digest sha256_hex(std::string_view hex);
  // One-shot hash of a buffer.
  static Digest of(std::string_view bytes);

  const std::string& algorithm() const noexcept { return algorithm_; }
  const std::string& hex() const noexcept { return hex_; }
  std::string str() const { return algorithm_ + ":" + hex_; }
  bool is_empty() const noexcept { return hex_.empty(); }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  std::string algorithm_;
  std::string hex_;
};

// Incremental SHA-256. Not thread-safe; movable.
class Sha256 {
 public:
  // The hasher's state between updates: the chaining value, the bytes hashed so far and the
  // unprocessed tail of the last block. Resuming from it continues exactly that hash, so a
  // stream whose prefix was hashed before need not hash the prefix again (FramedCompressSink's
  // checkpoints). It identifies nothing: it must be stored next to what it is the state of.
  struct State {
    std::uint32_t h[8] = {};
    std::uint64_t bytes = 0;  // hashed so far
    std::string tail;         // bytes % 64 of them, not yet in a block
    // "<64 hex> <bytes> <tail hex>" (the tail hex may be empty), and back; parse() rejects
    // anything else, including a tail whose size does not match bytes.
    std::string to_text() const;
    static std::optional<State> parse(std::string_view text);
    friend bool operator==(const State&, const State&) = default;
  };

  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(const void* data, std::size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Returns the digest; the hasher is reset and can be reused.
  Digest finish();
  State state() const;
  void restore(const State& s);
  std::uint64_t bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A sink that hashes the bytes it takes (the store's ingest) and lets that hash resume: handed
// one, a FramedCompressSink skips both its hashes over a prefix of frames it has a checkpoint
// for (compression.h, FramingOptions::hash_input).
class ResumableHash {
 public:
  virtual ~ResumableHash() = default;
  virtual Sha256::State hash_state() const = 0;
  // Writes `data` as ByteSink::write() would, but takes `after` as the hash state past it
  // instead of hashing it.
  virtual void write_hashed(std::span<const std::byte> data, const Sha256::State& after) = 0;
};

}  // namespace cbuild::oci

template <>
struct std::hash<cbuild::oci::Digest> {
  std::size_t operator()(const cbuild::oci::Digest& d) const noexcept { return std::hash<std::string>{}(d.hex()); }
};
