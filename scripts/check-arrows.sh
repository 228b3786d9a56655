#!/usr/bin/env bash
# Enforces the arrows of docs/design.md on #include lines (the linker enforces the modules'
# arrows on symbols; nothing else enforces the wings'):
#   modules: cli → builder → overlay → oci;  builder → registry-client → oci;  builder → oci
#   builder's wings: top (builder/*) → export → steps → {plan, cache, context} → dockerfile
# and forbids including another module's internal/ headers.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# check DIR KIND ALLOWED... — every quoted include under DIR (files directly in DIR only when
# KIND is "flat") whose first path component(s) name a unit of KIND must be in ALLOWED.
declare -A module_allowed=(
  [oci]="oci"
  [overlay]="overlay oci"
  [registry-client]="registry-client oci"
  [builder]="builder overlay registry-client oci"
  [cli]="cli builder overlay registry-client oci"
)
# The wings of builder/; "top" is builder/'s own files, which may use every wing.
declare -A wing_allowed=(
  [dockerfile]="dockerfile"
  [context]="context dockerfile"
  [plan]="plan dockerfile"
  [cache]="cache"
  [steps]="steps plan cache context dockerfile"
  [export]="export steps plan cache context dockerfile"
)
wings=" ${!wing_allowed[*]} "

includes() {  # FILE:INCLUDE lines for the sources under $1 (maxdepth $2, empty for all)
  local depth=()
  [ -n "${2:-}" ] && depth=(-maxdepth "$2")
  find "$1" "${depth[@]}" \( -name '*.h' -o -name '*.cpp' \) -print0 |
    xargs -0 -r grep -n -E '^\s*#\s*include "' |
    sed -E 's/^([^:]+):[0-9]+:.*#\s*include "([^"]+)".*/\1:\2/'
}

for module in "${!module_allowed[@]}"; do
  [ -d "$module" ] || continue
  while IFS=: read -r file inc; do
    target=${inc%%/*}
    case " oci overlay registry-client builder cli " in *" $target "*) ;; *) continue ;; esac
    if [[ " ${module_allowed[$module]} " != *" $target "* ]]; then
      echo "arrow violation: $file includes \"$inc\" ($module may not use $target)"; fail=1
    fi
    if [[ "$target" != "$module" && "$inc" == */internal/* ]]; then
      echo "internal include: $file includes \"$inc\" (another module's internals)"; fail=1
    fi
  done < <(includes "$module")
done

# Within builder/: a wing may include only the wings it points at, and never builder/'s own
# top-level headers (the executor and friends sit above every wing).
for wing in "${!wing_allowed[@]}"; do
  [ -d "builder/$wing" ] || { echo "missing wing: builder/$wing (docs/design.md names it)"; fail=1; continue; }
  while IFS=: read -r file inc; do
    [[ "$inc" == builder/* ]] || continue
    rest=${inc#builder/}
    if [[ "$rest" != */* ]]; then
      echo "wing violation: $file includes \"$inc\" (a wing may not use builder/'s top level)"; fail=1
      continue
    fi
    target=${rest%%/*}
    if [[ "$wings" != *" $target "* ]]; then
      echo "wing violation: $file includes \"$inc\" (builder/$target is not a wing)"; fail=1
    elif [[ " ${wing_allowed[$wing]} " != *" $target "* ]]; then
      echo "wing violation: $file includes \"$inc\" ($wing may not use $target)"; fail=1
    fi
  done < <(includes "builder/$wing")
done
# Nothing but the top's few files sits loose in builder/: new code belongs in a wing.
while IFS= read -r loose; do
  case "$(basename "$loose")" in
    executor.* | base_image.* | image_run.*) ;;
    *) echo "loose file: $loose (put it in one of builder/'s wings)"; fail=1 ;;
  esac
done < <(find builder -maxdepth 1 \( -name '*.h' -o -name '*.cpp' \))
exit $fail
