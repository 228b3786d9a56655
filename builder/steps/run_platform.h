// Whether a RUN step can execute the programs of an image built for another platform. cbuild
// runs RUN on this machine's kernel: programs of the host's platform run natively (and linux/386
// ones on linux/amd64); others only through a binfmt_misc emulator (qemu-user-static's
// handlers). Such a handler must carry the F flag, which makes the kernel open the interpreter
// when it is registered: the sandbox's root is the image's, where the interpreter's path does
// not exist. Without one, a foreign RUN is refused with the reason, never attempted (it would
// fail with a bare "exec format error", or worse run something else).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "oci/descriptor.h"

namespace cbuild::builder {

inline constexpr const char* kBinfmtMiscDir = "/proc/sys/fs/binfmt_misc";

// Why programs for `image` cannot run on `host`, or nullopt when they can (natively, or through
// an enabled F-flagged handler in `binfmt_dir` whose magic matches that platform's ELF header).
std::optional<std::string> foreign_run_problem(const oci::Platform& image, const oci::Platform& host,
                                               const std::filesystem::path& binfmt_dir = kBinfmtMiscDir);

}  // namespace cbuild::builder
