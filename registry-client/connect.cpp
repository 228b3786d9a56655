#include "registry-client/connect.h"

namespace cbuild::registry {

std::unique_ptr<Transport> connect(const Reference& ref, bool tls_verify, std::optional<Credentials> explicit_credentials) {
  TransportOptions o;
  o.tls_verify = tls_verify;
  o.credentials = std::move(explicit_credentials);
  o.credential_store = std::make_shared<CredentialStore>();
  o.credential_key = ref.credential_key();
  return std::make_unique<Transport>(ref.api_host(), std::move(o));
}

}  // namespace cbuild::registry
