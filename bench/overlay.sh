#!/usr/bin/env bash
# Layer apply and diff speed (issue 4, Speed):
#   apply: one zstd layer of a MIB MiB tree (default 1024) onto an empty snapshot with cbuild's
#          Applier, vs `zstd -dc BLOB | tar -x -C DIR` on the same blob;
#   diff:  an upper dir of FILES small files (default 100000) into a plain tar with the Differ,
#          vs `tar -cf OUT -C DIR .`.
# Each is repeated RUNS times (default 3), page cache dropped between runs when allowed;
# medians and ratios are printed. Needs root (owners, whiteout devices).
# usage: bench/overlay.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
build=${1:-build}
work=${2:-/var/tmp/cbuild-bench-overlay}
runs=${RUNS:-3}
mib=${MIB:-1024}
files=${FILES:-100000}
bin="$build/bench/bench_overlay"
[ -x "$bin" ] || { echo "build first: cmake --build $build --target bench_overlay" >&2; exit 1; }
mkdir -p "$work"
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# Every run starts cold (page cache dropped) unless NODROP is set or dropping is refused; the
# label printed with the figures says which.
state=cold
settle() { sync; if [ -n "${NODROP:-}" ] || ! echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then state=warm; fi; sleep "${SETTLE:-2}"; }
secs() { local s e; s=$(date +%s.%N); "$@" >&2; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

blob="$work/layer-$mib.tar.zst"
if [ ! -f "$blob" ]; then
  rm -rf "$work/tree"
  "$bin" gen "$work/tree" "$mib" 2000
  tar -cf - -C "$work/tree" . | zstd -q -3 -T2 -o "$blob"
  rm -rf "$work/tree"
fi
small="$work/small-$files"
if [ ! -f "$small/.done" ]; then rm -rf "$small"; "$bin" gen-small "$small" "$files"; touch "$small/.done"; fi

declare -a A B C D
for _ in $(seq "$runs"); do
  rm -rf "$work/out"; mkdir "$work/out"; settle
  A+=("$("$bin" apply "$blob" "$work/out" 2>/dev/null)")
  rm -rf "$work/out"; mkdir "$work/out"; settle
  B+=("$(secs sh -c "zstd -q -dc '$blob' | tar -x -C '$work/out'")")
  rm -f "$work/diff.tar"; settle
  C+=("$("$bin" diff "$small" "$work/diff.tar" 2>/dev/null)")
  rm -f "$work/diff.tar"; settle
  D+=("$(secs tar -cf "$work/diff.tar" -C "$small" .)")
done
rm -rf "$work/out" "$work/diff.tar"
a=$(printf '%s\n' "${A[@]}" | median); b=$(printf '%s\n' "${B[@]}" | median)
c=$(printf '%s\n' "${C[@]}" | median); d=$(printf '%s\n' "${D[@]}" | median)
echo "runs $runs, cores $(nproc), layer $(du -m "$blob" | cut -f1) MiB zstd of $mib MiB, $files small files"
printf 'apply  %s cbuild %7.2fs   zstd -dc | tar -x %7.2fs   ratio %.2f   (%s | %s)\n' "$state" "$a" "$b" "$(echo "$a/$b" | bc -l)" "${A[*]}" "${B[*]}"
printf 'diff   %s cbuild %7.2fs   tar -c            %7.2fs   ratio %.2f   (%s | %s)\n' "$state" "$c" "$d" "$(echo "$c/$d" | bc -l)" "${C[*]}" "${D[*]}"
