// A TCP listener on 127.0.0.1 with a port the kernel picks, for the test servers (only loopback
// addresses are ever used by the suite).
#pragma once

#include <string>

namespace cbuild::test {

// Returns the listening fd (close-on-exec, backlog 64) and sets `port`; throws
// std::runtime_error naming `who` when it cannot listen.
int listen_on_loopback(int& port, const std::string& who);

}  // namespace cbuild::test
