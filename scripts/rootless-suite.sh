#!/usr/bin/env bash
# The end-to-end suites (test_builder, test_cli) run twice, as root and as an unprivileged user
# (rootless mode), and every image the two passes write must have the same image ID and
# manifest digest. Run as root after a build; CI runs it from .ci/run.
#
#   scripts/rootless-suite.sh [build dir]        (default: build, or $CBUILD_BUILD_DIR)
#
# The user (cbuild-rootless, or $CBUILD_ROOTLESS_USER) is created once with a home and a
# subordinate id range of 65536 (useradd -m gives one; an existing user without a range gets
# the next free one). Each pass runs with CBUILD_TEST_IMAGE_LOG (docs/contributing.md: one
# line "<test case> #<call> <image ID> <manifest digest>" per image written, SOURCE_DATE_EPOCH
# pinned); the rootless pass adds CBUILD_TEST_AS_USER (tests/support/as_test_user.h), so every
# cbuild the tests start runs as the user while the tests check what they always check.
#
# A test case that fails in the rootless pass fails the script unless it fails in the root
# pass too (the root pass runs with SOURCE_DATE_EPOCH pinned by the image log, which a few tests
# of unpinned times do not expect; scripts/test.sh runs those without it): both are listed.
#
# The comparison rule: a test case's lines must be the same in both passes. Where they are
# not, that case runs as root once more: if root does not reproduce its own first lines either,
# the case is nondeterministic run to run (a base built by the docker peer at the current time,
# builds from several threads) and is listed as not comparable; otherwise the difference is
# rootless mode's and fails the script. A test failing in either pass fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-${CBUILD_BUILD_DIR:-build}}")
user=${CBUILD_ROOTLESS_USER:-cbuild-rootless}
[ "$(id -u)" = 0 ] || { echo "rootless-suite: run as root (it creates the user)" >&2; exit 2; }

# Test cases that cannot run rootless by design, with the reason; excluded from the rootless
# pass only (the root pass runs them), and printed so the list is never silent.
excluded=(
  "rootless: *|runs root and rootless builds side by side itself, as a user it creates"
  "rootless keeper: *|runs rootless commands itself, as a user it creates"
  "isolation chroot: *|the chroot level is for a container's root; a non-root cbuild refuses it (it builds in its own user namespace)"
  "build: a COPY layer gets no snapshot; run*|uses cbuild mount, refused rootless (the mount would end with the process)"
  "cbuild run / mount / umount / unpack with an image in the store*|uses cbuild mount, refused rootless (the mount would end with the process)"
  "reclaim: the next command after a SIGKILLed build removes its mounts*|looks for a killed build's mounts in the host's mount table; rootless mounts live in cbuild's own namespace and end with it"
  "reclaim: a live build's mounts and scratch survive*|looks for a live build's mounts in the host's mount table; rootless mounts are in cbuild's own namespace"
  "build --output type=oci,tar=false and type=local*|type=local writes the image's owners through the user's subordinate ids (12 is 100011 outside), as every rootless builder does"
)

if ! id "$user" >/dev/null 2>&1; then
  useradd -m -s /bin/sh "$user"
fi
free_start() { awk -F: 'BEGIN{m=100000} NF==3{e=$2+$3; if(e>m)m=e} END{print m}' "$1"; }
if ! grep -q "^$user:" /etc/subuid; then
  s=$(free_start /etc/subuid); usermod --add-subuids "$s-$((s + 65535))" "$user"
fi
if ! grep -q "^$user:" /etc/subgid; then
  s=$(free_start /etc/subgid); usermod --add-subgids "$s-$((s + 65535))" "$user"
fi
# The tests run cbuild without XDG_RUNTIME_DIR (as_test_user.h), so no keeper should be left
# (docs/rootless.md); if one is, it is stopped rather than kept across CI runs.
trap 'pkill -TERM -U "$user" -x cbuild-userns || true' EXIT

out=$build/rootless-suite
rm -rf "$out"
mkdir -p "$out/tmp"
# The tests' temporary directories live here, so lending them to the user (as_test_user.h)
# can only touch what these tests made. Like /tmp, anyone may create in it (a rootless cbuild
# makes its own scratch directories in $TMPDIR).
chmod 0755 "$out"
chmod 1777 "$out/tmp"
bins=(test_builder test_cli)
exclude_filter=$(printf '%s\n' "${excluded[@]}" | cut -d'|' -f1 | sed 's/,/?/g' | paste -sd,)

pass() {  # pass NAME [env...] -- [doctest args...]
  local name=$1 status=0; shift
  local env=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  : >"$out/$name.log"
  for b in "${bins[@]}"; do
    env TMPDIR="$out/tmp" CBUILD_TEST_IMAGE_LOG="$out/$name.log" "${env[@]}" \
      "$build/tests/$b" --force-colors=0 "$@" >"$out/$name.$b.out" 2>&1 && continue
    # A binary that ended without doctest's summary crashed: nothing after it was checked.
    grep -q '^\[doctest\] Status:' "$out/$name.$b.out" || { echo "rootless-suite: $b did not finish in the $name pass" >&2; status=1; }
  done
  return $status
}

# The names of the test cases with a failed assertion in a pass's output.
failures() { cat "$out/$1".*.out | awk '/^TEST CASE:  /{n=substr($0, 13)} /^[^ ]*: (FATAL )?ERROR: /{print n}' | sort -u; }

start=$(date +%s)
failed=0
pass root -- || failed=1
t_root=$(date +%s)
pass rootless CBUILD_TEST_AS_USER="$user" -- --test-case-exclude="$exclude_filter" || failed=1
t_user=$(date +%s)
new_failures=$(comm -13 <(failures root) <(failures rootless))
both_failures=$(comm -12 <(failures root) <(failures rootless))
if [ -n "$new_failures" ]; then
  failed=1
  while IFS= read -r c; do
    echo "rootless-suite: fails rootless only: $c" >&2
    awk -v c="$c" '/^TEST CASE:  /{on = substr($0, 13) == c} on && /: (FATAL )?ERROR: /{getline v; print "  " $0; print "  " v}' \
      "$out"/rootless.*.out | head -n 20 >&2
  done <<<"$new_failures"
fi

cases() { sed -E 's/ #[0-9]+ sha256:[0-9a-f]{64} sha256:[0-9a-f]{64}$//' "$1" | sort -u; }
# The lines of test case $2 in log $1 (names are compared as plain strings).
lines_of() { C=$2 awk 'index($0, ENVIRON["C"] " #") == 1 && substr($0, length(ENVIRON["C"]) + 3) ~ /^[0-9]+ sha256:/' "$1"; }
unstable=() differ=()
compared=0 same=0
while IFS= read -r c; do
  [ -n "$c" ] || continue
  skip=
  for e in "${excluded[@]}"; do
    pat=${e%%|*}
    # shellcheck disable=SC2053
    [[ $c == $pat ]] && skip=1
  done
  [ -z "$skip" ] || continue
  r=$(lines_of "$out/root.log" "$c"); u=$(lines_of "$out/rootless.log" "$c")
  n=$(printf '%s\n' "$r" | grep -c . || true)
  if [ "$r" = "$u" ]; then compared=$((compared + n)); same=$((same + n)); continue; fi
  : >"$out/again.log"
  for b in "${bins[@]}"; do
    env TMPDIR="$out/tmp" CBUILD_TEST_IMAGE_LOG="$out/again.log" "$build/tests/$b" --force-colors=0 \
      --test-case="$(printf '%s' "$c" | sed 's/,/?/g')" >>"$out/again.out" 2>&1 || true
  done
  if [ "$(lines_of "$out/again.log" "$c")" != "$r" ]; then unstable+=("$c"); continue; fi
  compared=$((compared + n))
  same=$((same + $(comm -12 <(printf '%s\n' "$r" | sort) <(printf '%s\n' "$u" | sort) | grep -c . || true)))
  differ+=("$c")
  echo "rootless-suite: images differ in \"$c\":" >&2
  diff <(printf '%s\n' "$r") <(printf '%s\n' "$u") | sed 's/^/  /' >&2 || true
done < <(cases "$out/root.log")

echo "rootless-suite: root pass $((t_root - start))s, rootless pass $((t_user - t_root))s, comparison $(( $(date +%s) - t_user ))s"
echo "rootless-suite: $compared images compared, $same identical, $(grep -c . "$out/rootless.log" || true) written rootless"
for e in "${excluded[@]}"; do echo "rootless-suite: not run rootless: ${e%%|*} — ${e#*|}"; done
[ -z "$both_failures" ] || while IFS= read -r c; do echo "rootless-suite: fails as root too under the image log: $c"; done <<<"$both_failures"
for c in "${unstable[@]}"; do echo "rootless-suite: not comparable (root differs run to run): $c"; done
[ ${#differ[@]} = 0 ] || failed=1
exit $failed
