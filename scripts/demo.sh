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
# Store round trip (until the builder's `cbuild build` takes over here): testdata/demo-context
# → one layer through the layer pipeline → config + manifest → tag in an OCI-layout store →
# every blob read back verified. Prints the manifest digest (stable: mtimes are clamped).
export SOURCE_DATE_EPOCH=1700000000
./build/cbuild --root "$root/store" store-roundtrip testdata/demo-context --tag cbuild-demo:latest
./build/cbuild --root "$root/store" images
