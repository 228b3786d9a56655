#!/usr/bin/env bash
# The end-to-end suites (test_builder, test_cli) run as root and then again in the other ways
# cbuild runs without privileges, and every image a later pass writes must have the same image
# ID and manifest digest as the root pass's:
#  - rootless: as an unprivileged user (rootless mode, the userns level);
#  - chroot: as root with docker's default capabilities and no CAP_SYS_ADMIN (what a CI
#    container's root has), at the chroot level.
# Run as root after a build; CI runs it from .ci/run.
#
#   scripts/rootless-suite.sh [build dir]        (default: build, or $CBUILD_BUILD_DIR)
#
# CBUILD_SUITE_PASSES picks the passes after the root one (default "rootless chroot");
# CBUILD_SUITE_REUSE_ROOT=1 keeps the root pass of the previous run in the build directory
# instead of running it again (for iterating on one pass; CI never sets it).
#
# The user (cbuild-rootless, or $CBUILD_ROOTLESS_USER) is created once with a home and a
# subordinate id range of 65536 (useradd -m gives one; an existing user without a range gets
# the next free one). Each pass runs with CBUILD_TEST_IMAGE_LOG (docs/contributing.md: one
# line "<test case> #<call> <image ID> <manifest digest>" per image written, SOURCE_DATE_EPOCH
# pinned); the rootless pass adds CBUILD_TEST_AS_USER (tests/support/as_test_user.h), so every
# cbuild the tests start runs as the user, and the chroot pass CBUILD_TEST_CAPS=docker-default
# (tests/support/test_caps.h) with CBUILD_ISOLATION=chroot (setpriv does not block user
# namespaces as docker's seccomp profile does, so `auto` would pick userns), so every cbuild
# runs under setpriv with docker's default capabilities at the chroot level — while the tests
# check what they always check.
#
# A test case that fails in a later pass fails the script unless it fails in the root pass too
# (the root pass runs with SOURCE_DATE_EPOCH pinned by the image log, which a few tests of
# unpinned times do not expect; scripts/test.sh runs those without it): both are listed.
#
# The comparison rule: a test case's lines must be the same in both passes. Where they are
# not, that case runs as root once more: if root does not reproduce its own first lines either,
# the case is nondeterministic run to run (a base built by the docker peer at the current time,
# builds from several threads) and is listed as not comparable; otherwise the difference is
# the pass's and fails the script. A test failing in either pass fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-${CBUILD_BUILD_DIR:-build}}")
user=${CBUILD_ROOTLESS_USER:-cbuild-rootless}
[ "$(id -u)" = 0 ] || { echo "rootless-suite: run as root (it creates the user)" >&2; exit 2; }

read -r -a passes <<<"${CBUILD_SUITE_PASSES:-rootless chroot}"
for p in "${passes[@]}"; do
  case $p in rootless | chroot) ;; *) echo "rootless-suite: CBUILD_SUITE_PASSES: unknown pass \"$p\" (expected rootless, chroot)" >&2; exit 2 ;; esac
done

# Test cases that cannot run in a pass by design, with the reason (each a limitation
# docs/cli.md states); excluded from that pass only (the root pass runs them), and printed so
# the list is never silent.
# shellcheck disable=SC2034  # read through exclude_filter/is_excluded (namerefs)
excluded_rootless=(
  "rootless: *|runs root and rootless builds side by side itself, as a user it creates"
  "rootless keeper: *|runs rootless commands itself, as a user it creates"
  "isolation chroot: *|the chroot level is for a container's root; a non-root cbuild refuses it (it builds in its own user namespace)"
  "build: a COPY layer gets no snapshot; run*|uses cbuild mount, refused rootless (the mount would end with the process)"
  "cbuild run / mount / umount / unpack with an image in the store*|uses cbuild mount, refused rootless (the mount would end with the process)"
  "reclaim: the next command after a SIGKILLed build removes its mounts*|looks for a killed build's mounts in the host's mount table; rootless mounts live in cbuild's own namespace and end with it"
  "reclaim: a live build's mounts and scratch survive*|looks for a live build's mounts in the host's mount table; rootless mounts are in cbuild's own namespace"
  "build --output type=oci,tar=false and type=local*|type=local writes the image's owners through the user's subordinate ids (12 is 100011 outside), as every rootless builder does"
  "devices, fifos and sockets through COPY*|its RUN steps mknod device nodes, which a user namespace cannot create (docs/rootless.md); COPY of a base image's devices rootless is compared in rootless_exact_test"
)
# shellcheck disable=SC2034
excluded_chroot=(
  "RUN --mount*|RUN --mount cannot be honoured at the chroot level (no mounts)"
  "dockerignore: a directory an exception keeps can be copied and bind-mounted*|uses RUN --mount=type=bind, refused at the chroot level (no mounts)"
  "lease: rmi and prune of the base while a build runs*|holds its build with RUN --mount=type=bind, refused at the chroot level (no mounts)"
  "--cache-from hits are lazy*|uses RUN --mount=type=bind, refused at the chroot level (no mounts)"
  "USER name:group gives the RUN process exactly that gid*|reads /proc/self/status in RUN; the chroot level mounts no /proc"
  "parallel stages: the RUNs of two independent stages overlap*|reads /proc/uptime in RUN; the chroot level mounts no /proc"
  "build: a COPY layer gets no snapshot; run*|counts snapshots and uses cbuild mount; the chroot level keeps no snapshots, and mounting needs CAP_SYS_ADMIN"
  "build: prune keeps the snapshots of tagged images*|counts the snapshots prune removes; the chroot level keeps no snapshots"
  "integrity: an image put in the store directly is checked when unpacked into a snapshot*|looks for the snapshot; the chroot level keeps no snapshots"
  "reclaim: the next command after a SIGKILLed build removes its mounts*|looks for a killed build's mounts; the chroot level mounts nothing"
  "reclaim: a live build's mounts and scratch survive*|looks for a live build's mounts; the chroot level mounts nothing"
  "isolation chroot: a RUN after lazy --cache-from hits*|its first build uses RUN --mount=type=bind, refused at the chroot level (no mounts)"
  "df: every blob, snapshot, step record and cache mount*|uses RUN --mount=type=cache, refused at the chroot level (no mounts)"
  "prune --filter until removes only records unused for longer*|uses RUN --mount=type=cache, refused at the chroot level (no mounts)"
  "prune --keep-storage removes the least recently used build cache first*|uses cbuild run, which needs CAP_SYS_ADMIN"
  "build: a RUN sees neither cbuild's argv*|reads /proc/1 in RUN; the chroot level mounts no /proc"
  "build: a RUN's capabilities, seccomp answers and kernel files match docker build's*|reads /proc/self/status in RUN; the chroot level mounts no /proc, makes no namespaces and loads no seccomp filter"
  "build: the RUN dies with a cbuild killed by SIGKILL*|the chroot level has no PID namespace to end a RUN whose cbuild was SIGKILLed"
  "cbuild run*|cbuild run needs CAP_SYS_ADMIN"
  "run uses the manifest inspect shows for the host*|uses cbuild run, which needs CAP_SYS_ADMIN"
  "a fully cached build with --push from an empty store moves no layer bytes*|checks cbuild run's error for a layer whose registry is gone; cbuild run needs CAP_SYS_ADMIN"
  "an index without the host's platform is an error when none is given*|checks cbuild run's platform error; cbuild run needs CAP_SYS_ADMIN"
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
if [ "${CBUILD_SUITE_REUSE_ROOT:-}" = 1 ]; then
  [ -f "$out/root.log" ] || { echo "rootless-suite: CBUILD_SUITE_REUSE_ROOT=1 but no root pass in $out" >&2; exit 2; }
  find "$out" -mindepth 1 -maxdepth 1 ! -name 'root.*' -exec rm -rf {} +
else
  rm -rf "$out"
fi
mkdir -p "$out/tmp"
# The tests' temporary directories live here, so lending them to the user (as_test_user.h)
# can only touch what these tests made. Like /tmp, anyone may create in it (a rootless cbuild
# makes its own scratch directories in $TMPDIR).
chmod 0755 "$out"
chmod 1777 "$out/tmp"
bins=(test_builder test_cli)
# doctest's filter for a pass's exclusions (a comma separates filters there).
exclude_filter() { local -n ex=excluded_$1; printf '%s\n' "${ex[@]}" | cut -d'|' -f1 | sed 's/,/?/g' | paste -sd,; }
is_excluded() {  # is_excluded PASS CASE
  local -n ex=excluded_$1
  local e
  # shellcheck disable=SC2053
  for e in "${ex[@]}"; do [[ $2 == ${e%%|*} ]] && return 0; done
  return 1
}

# The binaries of a pass run side by side, as ctest runs the modules (their shared state —
# the docker peer, the store's owner registry — is locked); each appends whole lines to the
# pass's image log, one test case's lines from one binary.
pass() {  # pass NAME [env...] -- [doctest args...]
  local name=$1 status=0 i; shift
  local env=() pids=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  : >"$out/$name.log"
  for b in "${bins[@]}"; do
    env TMPDIR="$out/tmp" CBUILD_TEST_IMAGE_LOG="$out/$name.log" "${env[@]}" \
      "$build/tests/$b" --force-colors=0 "$@" >"$out/$name.$b.out" 2>&1 &
    pids+=($!)
  done
  for i in "${!bins[@]}"; do
    wait "${pids[$i]}" && continue
    # A binary that ended without doctest's summary crashed: nothing after it was checked.
    grep -q '^\[doctest\] Status:' "$out/$name.${bins[$i]}.out" ||
      { echo "rootless-suite: ${bins[$i]} did not finish in the $name pass" >&2; status=1; }
  done
  return $status
}

# The names of the test cases with a failed assertion in a pass's output.
failures() { cat "$out/$1".*.out | awk '/^TEST CASE:  /{n=substr($0, 13)} /^[^ ]*: (FATAL )?ERROR: /{print n}' | sort -u; }
cases() { sed -E 's/ #[0-9]+ sha256:[0-9a-f]{64} sha256:[0-9a-f]{64}$//' "$1" | sort -u; }
# The lines of test case $2 in log $1 (names are compared as plain strings).
lines_of() { C=$2 awk 'index($0, ENVIRON["C"] " #") == 1 && substr($0, length(ENVIRON["C"]) + 3) ~ /^[0-9]+ sha256:/' "$1"; }

failed=0
unstable=()
# again[CASE]: root's lines for a case run once more (for the cases a pass's images differ
# in), kept across passes.
declare -A again
root_again() {
  local c=$1 b
  [ -z "${again[$c]+set}" ] || return 0
  : >"$out/again.log"
  for b in "${bins[@]}"; do
    env TMPDIR="$out/tmp" CBUILD_TEST_IMAGE_LOG="$out/again.log" "$build/tests/$b" --force-colors=0 \
      --test-case="$(printf '%s' "$c" | sed 's/,/?/g')" >>"$out/again.out" 2>&1 || true
  done
  again[$c]=$(lines_of "$out/again.log" "$c")
}

# compare NAME: pass NAME's failures and images against the root pass's; prints what differs
# and the totals, and sets `failed`.
compare() {
  local name=$1 c r u n
  local new_failures both_failures compared=0 same=0 differ=0
  new_failures=$(comm -13 <(failures root) <(failures "$name"))
  both_failures=$(comm -12 <(failures root) <(failures "$name"))
  if [ -n "$new_failures" ]; then
    failed=1
    while IFS= read -r c; do
      echo "rootless-suite: fails in the $name pass only: $c" >&2
      awk -v c="$c" '/^TEST CASE:  /{on = substr($0, 13) == c} on && /: (FATAL )?ERROR: /{getline v; print "  " $0; print "  " v}' \
        "$out/$name".*.out | head -n 20 >&2
    done <<<"$new_failures"
  fi
  while IFS= read -r c; do
    [ -n "$c" ] || continue
    ! is_excluded "$name" "$c" || continue
    r=$(lines_of "$out/root.log" "$c"); u=$(lines_of "$out/$name.log" "$c")
    n=$(printf '%s\n' "$r" | grep -c . || true)
    if [ "$r" = "$u" ]; then compared=$((compared + n)); same=$((same + n)); continue; fi
    root_again "$c"
    if [ "${again[$c]}" != "$r" ]; then
      [[ " ${unstable[*]} " == *" $c "* ]] || unstable+=("$c")
      continue
    fi
    compared=$((compared + n))
    same=$((same + $(comm -12 <(printf '%s\n' "$r" | sort) <(printf '%s\n' "$u" | sort) | grep -c . || true)))
    differ=$((differ + 1))
    echo "rootless-suite: images differ in the $name pass in \"$c\":" >&2
    diff <(printf '%s\n' "$r") <(printf '%s\n' "$u") | sed 's/^/  /' >&2 || true
  done < <(cases "$out/root.log")
  echo "rootless-suite: $name pass: $compared images compared, $same identical, $(grep -c . "$out/$name.log" || true) written"
  local -n ex=excluded_$name
  local e
  for e in "${ex[@]}"; do echo "rootless-suite: not run in the $name pass: ${e%%|*} — ${e#*|}"; done
  [ -z "$both_failures" ] || while IFS= read -r c; do echo "rootless-suite: fails as root too under the image log: $c"; done <<<"$both_failures"
  [ "$differ" = 0 ] || failed=1
}

durations=()
t=$(date +%s)
if [ "${CBUILD_SUITE_REUSE_ROOT:-}" = 1 ]; then
  durations+=("root pass reused")
else
  pass root -- || failed=1
  durations+=("root pass $(($(date +%s) - t))s")
fi
for p in "${passes[@]}"; do
  t=$(date +%s)
  f=$(exclude_filter "$p") args=()
  [ -z "$f" ] || args=(--test-case-exclude="$f")
  case $p in
    rootless) pass rootless CBUILD_TEST_AS_USER="$user" -- "${args[@]}" || failed=1 ;;
    chroot) pass chroot CBUILD_TEST_CAPS=docker-default CBUILD_ISOLATION=chroot -- "${args[@]}" || failed=1 ;;
  esac
  durations+=("$p pass $(($(date +%s) - t))s")
done
t=$(date +%s)
for p in "${passes[@]}"; do compare "$p"; done
durations+=("comparison $(($(date +%s) - t))s")
summary=$(printf '%s, ' "${durations[@]}")
echo "rootless-suite: ${summary%, }"
for c in "${unstable[@]}"; do echo "rootless-suite: not comparable (root differs run to run): $c"; done
exit $failed
