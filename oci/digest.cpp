#include "oci/digest.h"

#include <openssl/evp.h>

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
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    throw Error(ErrorKind::Internal, "cannot initialise SHA-256");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t size) {
  if (size) EVP_DigestUpdate(impl_->ctx, data, size);
}

Digest Sha256::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
  static const char* hexd = "0123456789abcdef";
  std::string hex(len * 2, '0');
  for (unsigned i = 0; i < len; ++i) {
    hex[2 * i] = hexd[md[i] >> 4];
    hex[2 * i + 1] = hexd[md[i] & 15];
  }
  return Digest::sha256_hex(hex);
}

}  // namespace cbuild::oci
