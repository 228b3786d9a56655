// A differential check for whole builds: the same context and Dockerfile built by cbuild and by
// the docker peer must give the same flattened file tree (paths, types, modes, owners, content,
// link targets), the same run-time config and the same history. Used by the cases modelled on
// public Dockerfiles, where any difference is a finding.
#pragma once

#include <string>
#include <vector>

#include "tests/support/build_project.h"

namespace cbuild::test {

// The config fields compared (under "config"): everything a container runtime reads.
extern const std::vector<std::string> kComparedConfigFields;

// Builds p.ctx (its Dockerfile) with cbuild as `tag` in the docker format (so Shell, Healthcheck
// and the rest are kept, as docker keeps them) and with docker, both given `flags` (e.g.
// --build-arg); CHECKs the trees, the config fields above, each history entry's created_by and
// empty_layer, and the layer count. Both builds must succeed (REQUIRE). Returns false when the
// docker peer is not available (a developer without docker; in CI that FAILs instead).
bool check_same_as_docker(const BuildProject& p, const std::string& tag, const std::vector<std::string>& flags = {});

// The Dockerfile text with {BASE} replaced by the shared base image's name and {T} by a tab
// (official Dockerfiles indent continuation lines with tabs).
std::string dockerfile_text(const BuildProject& p, std::string text);

}  // namespace cbuild::test
