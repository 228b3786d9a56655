#!/usr/bin/env bash
# Sandbox start → exec of /bin/true in a busybox rootfs (issue 4, Speed: median < 15 ms), next
# to `unshare --mount --pid --fork --uts --ipc chroot ROOT /bin/true` timed the same way
# (fork/exec/wait from the same C++ program). Warm: both run after a warm-up, the rootfs in the
# page cache. Needs root.
# usage: bench/sandbox_start.sh [BUILD_DIR] [RUNS]
set -euo pipefail
build=${1:-build}
runs=${2:-${RUNS:-200}}
bin="$build/bench/bench_overlay"
[ -x "$bin" ] || { echo "build first: cmake --build $build --target bench_overlay" >&2; exit 1; }
root=$(mktemp -d /var/tmp/cbuild-bench-sandbox.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for a in true sh; do ln -s busybox "$root/bin/$a"; done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
"$bin" sandbox "$root" 5 > /dev/null   # warm-up
cb=$("$bin" sandbox "$root" "$runs" | median)
un=$("$bin" spawn "$runs" unshare --mount --pid --fork --uts --ipc chroot "$root" /bin/true | median)
printf 'runs %s, cores %s\n' "$runs" "$(nproc)"
printf 'cbuild sandbox /bin/true   warm median %7.2f ms\n' "$cb"
printf 'unshare … chroot … /bin/true warm median %7.2f ms\n' "$un"
printf 'ratio cbuild/unshare            %7.2f\n' "$(echo "$cb / $un" | bc -l)"
