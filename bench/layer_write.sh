#!/usr/bin/env bash
# Layer write / read throughput (issue: foundation, Speed). One run compares, on the same
# mixed tree of MIB MiB (default 1 GiB; 1/3 random, 2/3 text, ~2000 files):
#   cbuild zstd-3 (framed, 2 workers) into a store  vs  tar -cf - | zstd -3 -T2
#   cbuild gzip (ISA-L, framed)         vs  tar -cf - | pigz -p2   (and the ratio of gzip -6)
#   cbuild read of both layers (decompress + verify + walk every entry), as the store reads
#   and the limits: zstd's in-memory benchmark of the same tar on 1 and 2 threads, OpenSSL SHA-256
# Each measurement is repeated RUNS times (default 3); medians and ratios are printed, each
# labelled with the page-cache state it ran in: writes run "warm" (the source tree in the page
# cache, for cbuild and the CLI peers alike, as a layer written right after a RUN step is);
# reads run "cold" (caches dropped, the blob comes from the disk) and "warm" (read once before).
# usage: bench/layer_write.sh [BUILD_DIR] [WORK_DIR]   (RUNS=3, MIB=1024: the tree's size)
set -euo pipefail
build=${1:-build}
work=${2:-/var/tmp/cbuild-bench-layer}
runs=${RUNS:-3}
mib=${MIB:-1024}
bin="$build/bench/bench_layer_write"
[ -x "$bin" ] || { echo "build first: cmake --build $build --target bench_layer_write" >&2; exit 1; }
mkdir -p "$work"
tree="$work/tree-$mib"
if [ ! -f "$tree/.done" ]; then
  rm -rf "$tree"
  "$bin" gen "$tree" "$mib" 2000
  touch "$tree/.done"
fi
# Without dropping caches nothing here is cold: say so in the labels rather than mislabel.
cold=cold
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || cold="warm(no drop_caches)"; sleep "${SETTLE:-5}"; }
# GNU tar skips reading file data when its output is /dev/null: pipe through cat so it reads.
warm_tree() { drop_caches; tar -cf - -C "$tree" . | cat > /dev/null; }
warm_file() { cat "$1" > /dev/null; }
bytes=$(tar -cf - -C "$tree" . | wc -c)
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
time_cmd() {  # prints seconds of "$@"
  local s e
  s=$(date +%s.%N); "$@" >&2; e=$(date +%s.%N)
  echo "$e - $s" | bc -l
}
declare -A T
run() {  # name, settle command, command...
  local name=$1 prep=$2; shift 2
  local list=() state
  for _ in $(seq "$runs"); do rm -f "$work/out"; eval "$prep"; list+=("$(time_cmd "$@")"); done
  case $prep in drop_caches) state=$cold ;; *) state=warm ;; esac
  T[$name]=$(printf '%s\n' "${list[@]}" | median)
  printf '%-22s %-5s median %6.2fs  %7.1f MB/s  (runs: %s)\n' "$name" "$state" "${T[$name]}" \
    "$(echo "$bytes / ${T[$name]} / 1000000" | bc -l)" "${list[*]}"
}
echo "tree: $tree ($((bytes / 1048576)) MiB of tar), runs: $runs, cores: $(nproc)"
run cbuild-zstd3 warm_tree "$bin" write "$tree" "$work/out" zstd --threads 2
zstd_size=$(stat -c %s "$work/out")
cp "$work/out" "$work/layer.zst"
run cli-tar-zstd3-T2 warm_tree sh -c "tar -cf - -C '$tree' . | zstd -q -3 -T2 > '$work/out'"
cli_zstd_size=$(stat -c %s "$work/out")
run cbuild-gzip warm_tree "$bin" write "$tree" "$work/out" gzip --threads 2
gzip_size=$(stat -c %s "$work/out")
cp "$work/out" "$work/layer.gz"
run cli-tar-pigz-p2 warm_tree sh -c "tar -cf - -C '$tree' . | pigz -p2 -6 > '$work/out'"
pigz_size=$(stat -c %s "$work/out")
# The digests are known beforehand, as a store knows them from the manifest.
gz_digest=sha256:$(sha256sum "$work/layer.gz" | cut -d' ' -f1)
zst_digest=sha256:$(sha256sum "$work/layer.zst" | cut -d' ' -f1)
run cbuild-read-gzip drop_caches "$bin" read "$work/layer.gz" "$gz_digest"
run cbuild-read-gzip "warm_file '$work/layer.gz'" "$bin" read "$work/layer.gz" "$gz_digest"
run cbuild-read-zstd drop_caches "$bin" read "$work/layer.zst" "$zst_digest"
run cbuild-read-zstd "warm_file '$work/layer.zst'" "$bin" read "$work/layer.zst" "$zst_digest"
# The machine's limits for the zstd goal, in the same run: zstd's own in-memory benchmark of the
# same tar (no tar walk, no hashing, no file written) on one and two threads, and OpenSSL SHA-256.
tar -cf "$work/tree.tar" -C "$tree" .
declare -A ZB
for t in 1 2; do
  line=$(zstd -b3 -T"$t" "$work/tree.tar" 2>&1 | tr '\r' '\n' | grep -a 'MB/s' | tail -1)
  ZB[$t]=$(echo "$line" | sed 's/.*), *\([0-9.]*\) MB\/s.*/\1/')
  printf 'limit: zstd -b3 -T%s in memory: %s\n' "$t" "$(echo "$line" | sed 's/.*(x/(x/')"
done
rm -f "$work/tree.tar"
sha_kbs=$(openssl speed -evp sha256 -bytes 1048576 -seconds 2 2>/dev/null | awk '/^sha256/ {print $2}' | tr -d k)
printf 'limit: openssl sha256 (1 MiB blocks): %s kB/s\n' "$sha_kbs"
# The ceiling of a zstd-3 layer written into the store on this machine, from the two limits
# above: compressing on both cores at zstd's own in-memory speed, plus the two SHA-256 passes
# every layer needs (DiffID over the tar, digest over the blob) spread over both cores, with
# no reading, no tar, no copy and no write at all.
ceiling=$(echo "$bytes / ($bytes / (${ZB[2]} * 1000000) + ($bytes + $zstd_size) / (2 * $sha_kbs * 1000)) / 1000000" | bc -l)
printf 'limit: zstd-3 layer ceiling (zstd -T2 + both hashes on 2 cores, no I/O): %.1f MB/s; cbuild reached %.1f MB/s = %.0f%% of it\n' \
  "$ceiling" "$(echo "$bytes / ${T[cbuild-zstd3]} / 1000000" | bc -l)" "$(echo "100 * $bytes / ${T[cbuild-zstd3]} / 1000000 / $ceiling" | bc -l)"
echo "ratio: cbuild zstd $zstd_size vs zstd -3 $cli_zstd_size ($(echo "100*$zstd_size/$cli_zstd_size" | bc -l | cut -c1-6)%);" \
  "cbuild gzip $gzip_size vs gzip -6 (pigz) $pigz_size ($(echo "100*$gzip_size/$pigz_size" | bc -l | cut -c1-6)%)"
echo "speed ratios (cbuild / cli, >1 is faster): zstd $(echo "${T[cli-tar-zstd3-T2]} / ${T[cbuild-zstd3]}" | bc -l | cut -c1-5)," \
  "gzip $(echo "${T[cli-tar-pigz-p2]} / ${T[cbuild-gzip]}" | bc -l | cut -c1-5)"
echo "peak memory: see max_rss_mib in the write/read lines above (printed by bench_layer_write)"
