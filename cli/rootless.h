// Rootless mode at start-up: a cbuild started by a non-root user enters a user namespace
// (overlay/user_namespace.h) before it does anything else — before any thread exists, which
// the kernel requires — so every command that touches the store (whose snapshots then hold
// files owned by the user's subordinate ids) or mounts runs as root of that namespace.
//
// needs_user_namespace(args) is false for root, and for invocations that touch no store:
// --help, --version, and the commands version, check, debug, login, logout (and help).
// enter_rootless_mode() enters, prints the one-id notice once when only one id could be
// mapped, and returns the mapping. Errors are cbuild::Error (FailedPrecondition) saying what
// is missing.
#pragma once

#include <string>
#include <vector>

#include "overlay/user_namespace.h"

namespace cbuild::cli {

bool needs_user_namespace(const std::vector<std::string>& args);
overlay::IdMapping enter_rootless_mode();

}  // namespace cbuild::cli
