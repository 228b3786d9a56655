// The low-level SHA256_* interface is deprecated in OpenSSL 3 in favour of EVP, but EVP cannot
// save and restore a hash's state (Sha256::State), and these functions run the same block code.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "oci/digest.h"

#include <openssl/sha.h>

#include <charconv>
#include <cstring>

#include "oci/base/error.h"

namespace cbuild::oci {

namespace {
bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}
}  // namespace

std::optional<Digest> Digest::try_parse(std::string_view s) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view algo = s.substr(0, colon), hex = s.substr(colon + 1);
  std::size_t want = algo == "sha256" ? 64 : algo == "sha512" ? 128 : 0;
  if (want == 0 || hex.size() != want || !is_lower_hex(hex)) return std::nullopt;
  Digest d;
  d.algorithm_ = std::string(algo);
  d.hex_ = std::string(hex);
  return d;
}

Digest Digest::parse(std::string_view s, std::string_view what) {
  if (auto d = try_parse(s)) return *d;
  std::string why;
  auto colon = s.find(':');
  std::string_view algo = colon == std::string_view::npos ? std::string_view{} : s.substr(0, colon);
  if (colon == std::string_view::npos) why = "missing \"algorithm:\" prefix";
  else if (algo != "sha256" && algo != "sha512") why = "unsupported algorithm " + quote(algo);
  else why = std::string(algo) + " needs " + (algo == "sha256" ? "64" : "128") + " lowercase hex digits";
  throw Error(ErrorKind::InvalidArgument, "invalid " + std::string(what) + " " + quote(s) + ": " + why);
}

Digest Digest::sha256_hex(std::string_view hex) {
  if (hex.size() != 64 || !is_lower_hex(hex))
    throw Error(ErrorKind::InvalidArgument, "invalid sha256 hex " + quote(hex));
  Digest d;
  d.algorithm_ = "sha256";
  d.hex_ = std::string(hex);
  return d;
}

Digest Digest::of(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

struct Sha256::Impl {
  SHA256_CTX ctx;
  Impl() { SHA256_Init(&ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t size) {
  if (size) SHA256_Update(&impl_->ctx, data, size);
}

std::uint64_t Sha256::bytes() const {
  const SHA256_CTX& c = impl_->ctx;
  return ((static_cast<std::uint64_t>(c.Nh) << 32) | c.Nl) / 8;
}

// SHA256_CTX keeps the unprocessed tail as raw bytes at the start of data[] (num of them).
Sha256::State Sha256::state() const {
  const SHA256_CTX& c = impl_->ctx;
  State s;
  for (int i = 0; i < 8; ++i) s.h[i] = c.h[i];
  s.bytes = bytes();
  s.tail.assign(reinterpret_cast<const char*>(c.data), c.num);
  return s;
}

void Sha256::restore(const State& s) {
  if (s.tail.size() != s.bytes % 64) throw Error(ErrorKind::InvalidArgument, "SHA-256 state: tail does not match the length");
  SHA256_CTX& c = impl_->ctx;
  SHA256_Init(&c);
  for (int i = 0; i < 8; ++i) c.h[i] = s.h[i];
  std::uint64_t bits = s.bytes * 8;
  c.Nl = static_cast<SHA_LONG>(bits & 0xffffffffu);
  c.Nh = static_cast<SHA_LONG>(bits >> 32);
  std::memset(c.data, 0, sizeof c.data);
  std::memcpy(c.data, s.tail.data(), s.tail.size());
  c.num = static_cast<unsigned>(s.tail.size());
}

namespace {
constexpr char kHex[] = "0123456789abcdef";
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

std::string Sha256::State::to_text() const {
  std::string t;
  t.reserve(64 + 22 + 2 * tail.size());
  for (std::uint32_t w : h)
    for (int k = 28; k >= 0; k -= 4) t.push_back(kHex[(w >> k) & 15]);
  t += ' ';
  t += std::to_string(bytes);
  t += ' ';
  for (char c : tail) {
    t.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
    t.push_back(kHex[static_cast<unsigned char>(c) & 15]);
  }
  return t;
}

std::optional<Sha256::State> Sha256::State::parse(std::string_view text) {
  State s;
  if (text.size() < 64 + 3 || text[64] != ' ') return std::nullopt;
  for (int i = 0; i < 64; ++i) {
    int v = hex_value(text[i]);
    if (v < 0) return std::nullopt;
    s.h[i / 8] = (s.h[i / 8] << 4) | static_cast<std::uint32_t>(v);
  }
  std::string_view rest = text.substr(65);
  auto sp = rest.find(' ');
  if (sp == std::string_view::npos || sp == 0) return std::nullopt;
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + sp, s.bytes);
  if (ec != std::errc() || p != rest.data() + sp) return std::nullopt;
  std::string_view hex = rest.substr(sp + 1);
  if (hex.size() % 2 || hex.size() / 2 != s.bytes % 64) return std::nullopt;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int a = hex_value(hex[i]), b = hex_value(hex[i + 1]);
    if (a < 0 || b < 0) return std::nullopt;
    s.tail.push_back(static_cast<char>(a * 16 + b));
  }
  return s;
}

Digest Sha256::finish() {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_Final(md, &impl_->ctx);
  SHA256_Init(&impl_->ctx);
  std::string hex(2 * SHA256_DIGEST_LENGTH, '0');
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    hex[2 * i] = kHex[md[i] >> 4];
    hex[2 * i + 1] = kHex[md[i] & 15];
  }
  return Digest::sha256_hex(hex);
}

}  // namespace cbuild::oci
