#!/usr/bin/env bash
# The whole test suite: configure (warnings as errors), build, check module arrows, run ctest.
# Root-only tests run when this runs as root (CI does); they fail loudly if their setup breaks.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CBUILD_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCBUILD_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
bash scripts/check-arrows.sh
cd "$build"
ctest --output-on-failure --timeout 1500 "$@"
