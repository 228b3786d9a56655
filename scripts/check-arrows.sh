#!/usr/bin/env bash
# Enforces the module arrows of docs/design.md on #include lines (the linker enforces them on symbols):
#   cli → builder → overlay → oci;  builder → registry-client → oci;  builder → oci
# and forbids including another module's internal/ headers.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [oci]="oci"
  [overlay]="overlay oci"
  [registry-client]="registry-client oci"
  [builder]="builder overlay registry-client oci"
  [cli]="cli builder overlay registry-client oci"
)
fail=0
for module in "${!allowed[@]}"; do
  [ -d "$module" ] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"${line#*:}")
    target=${inc%%/*}
    case " oci overlay registry-client builder cli " in *" $target "*) ;; *) continue ;; esac
    if [[ " ${allowed[$module]} " != *" $target "* ]]; then
      echo "arrow violation: $file includes \"$inc\" ($module may not use $target)"; fail=1
    fi
    if [[ "$target" != "$module" && "$inc" == */internal/* ]]; then
      echo "internal include: $file includes \"$inc\" (another module's internals)"; fail=1
    fi
  done < <(grep -rn --include='*.h' --include='*.cpp' -E '^\s*#\s*include "' "$module" | sed -E 's/^([^:]+):[0-9]+:/\1:/')
done
exit $fail
