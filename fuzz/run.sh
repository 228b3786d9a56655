#!/usr/bin/env bash
# Builds the libFuzzer target(s) in fuzz/ with clang (ASan + UBSan) and runs them.
#   fuzz/run.sh [SECONDS=600] [JOBS=1]
# Seeds: the BuildKit conformance Dockerfiles and shell vectors (read where they lie).
# Work files go to ${FUZZ_DIR:-/tmp/cbuild-fuzz}; crashes are saved there as crash-*.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:-600}
jobs=${2:-1}
out=${FUZZ_DIR:-/tmp/cbuild-fuzz}
conf="$root/../shared/conformance/buildkit/frontend/dockerfile"
command -v clang++ >/dev/null || { echo "fuzz/run.sh: clang++ missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
mkdir -p "$out/corpus" "$out/seeds"
srcs=("$root"/builder/dockerfile/*.cpp "$root"/builder/planner.cpp "$root"/builder/dockerignore.cpp
      "$root"/oci/base/error.cpp "$root"/oci/base/fs.cpp)
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root" "$here/dockerfile_fuzz.cpp" "${srcs[@]}" -o "$out/dockerfile_fuzz"
i=0
for f in "$conf"/parser/testfiles/*/Dockerfile "$conf"/parser/testfiles-negative/*/Dockerfile \
         "$conf"/parser/testfile-line/Dockerfile; do
  cp "$f" "$out/seeds/df$((i++))"
done
while IFS= read -r line; do printf '%s' "$line" > "$out/seeds/sh$((i++))"; done < <(grep -v '^#' "$conf/shell/envVarTest" | cut -d'|' -f2)
cd "$out"
# -timeout flags any input slower than 10 s (a hang); -max_len allows multi-KB Dockerfiles.
./dockerfile_fuzz -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -jobs="$jobs" -workers="$jobs" -print_final_stats=1 corpus seeds
