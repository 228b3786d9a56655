// connect() — the Transport for a reference's registry with the user's credentials (docker
// config / containers auth.json, see credentials.h) and TLS choice. Used by the commands.
#pragma once

#include <memory>
#include <optional>

#include "registry-client/credentials.h"
#include "registry-client/reference.h"
#include "registry-client/transport.h"

namespace cbuild::registry {

std::unique_ptr<Transport> connect(const Reference& ref, bool tls_verify,
                                   std::optional<Credentials> explicit_credentials = std::nullopt);

}  // namespace cbuild::registry
