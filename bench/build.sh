#!/usr/bin/env bash
# Build benchmarks (issue: build executor, Speed): cbuild, buildah and docker build on the same
# inputs, in one run, from the same busybox base (made by cbuild FROM scratch and handed to the
# peers with `cbuild save`). Prints per-scenario medians, ratios to the best peer, and cbuild's
# peak memory. Every figure is labelled cold or warm. Cold runs use --no-cache after dropping
# the page cache (the context is then read back once, as a just-edited tree would be), and
# cbuild a fresh store holding only the base: no step records, layer memos or file hashes.
#   S1 small busybox build with RUN/ENV/CMD (cold: --no-cache)
#   S2 warm no-op rebuild of S1
#   S3 COPY of a 1 GiB context (cold), and cbuild's --no-cache rebuild with the layer already
#      in its store (warm: a layer-memo hit, printed on its own line, never as the cold figure)
#   S4 COPY of 100,000 × 1 KiB files (cold)
#   S5 RUN writing 512 MiB (cold), and the same command bare in a chroot (for the overhead ratio)
#   S6 rebuild of S3 after one file changed (warm)
# The base and the contexts come from bench/build_inputs.sh, which bench/unprivileged.sh (the
# same scenarios rootless and at the chroot isolation level) shares.
# usage: bench/build.sh [BUILD_DIR] [SCENARIOS…]   (default: all; RUNS=3; WORK=/var/tmp/cbuild-bench-build)
# Needs root, docker.io and buildah (scripts/install-deps.sh); starts a private dockerd.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}; shift || true
scenarios=${*:-S1 S2 S3 S4 S5 S6}
runs=${RUNS:-3}
work=${WORK:-/var/tmp/cbuild-bench-build}
cbuild="$build/cbuild"
[ -x "$cbuild" ] || { echo "build cbuild first ($cbuild)" >&2; exit 1; }
mkdir -p "$work"
root="$work/cbuild-root"

# --- peers -------------------------------------------------------------------------------
dockerd_dir="$work/dockerd"
export DOCKER_HOST="unix://$dockerd_dir/docker.sock" DOCKER_BUILDKIT=1
if ! /usr/bin/docker version >/dev/null 2>&1; then
  mkdir -p "$dockerd_dir"
  echo '{"features":{"buildkit":true},"storage-driver":"overlay2","iptables":false,"ip6tables":false,"ip-masq":false,"bridge":"none","log-level":"warn"}' > "$dockerd_dir/daemon.json"
  setsid /usr/sbin/dockerd --config-file "$dockerd_dir/daemon.json" --data-root "$dockerd_dir/data" \
    --exec-root "$dockerd_dir/exec" --pidfile "$dockerd_dir/pid" -H "$DOCKER_HOST" >"$dockerd_dir/log" 2>&1 &
  for _ in $(seq 100); do /usr/bin/docker version >/dev/null 2>&1 && break; sleep 0.3; done
  trap 'kill "$(cat "$dockerd_dir/pid")" 2>/dev/null || true' EXIT
fi
export BUILDAH_ISOLATION=chroot
buildah_root="$work/buildah"
BUILDAH=(buildah --root "$buildah_root/root" --runroot "$buildah_root/run" --storage-driver overlay)

# --- the shared base and the inputs (bench/build_inputs.sh) -------------------------------
. "$here/bench/build_inputs.sh"
if [ ! -f "$work/base.ready" ]; then
  rm -rf "$root" "$work/cbuild-cold-template"
  make_base "$root"
  /usr/bin/docker load -i "$work/base-docker.tar" >/dev/null
  "${BUILDAH[@]}" pull -q "oci-archive:$work/base-oci.tar" >/dev/null
  "${BUILDAH[@]}" tag "$("${BUILDAH[@]}" images -q | head -1)" localhost/bench-base:1 docker.io/library/bench-base:1
  touch "$work/base.ready"
fi

# A cold cbuild run starts from an empty build cache with the base image present: a copy of a
# store holding only bench-base:1 and its unpacked snapshot — as `docker load` and `buildah pull`
# leave the base with the peers — and no step records, layer memos, file hashes or frame
# records.
cold_root="$work/cbuild-cold-root"
cold_template="$work/cbuild-cold-template"
fresh_cold_root() {
  if [ ! -f "$cold_template/.ready" ]; then
    local tctx="$work/cold-template-ctx"
    rm -rf "$cold_template" "$tctx"; mkdir -p "$cold_template" "$tctx"
    "$cbuild" --root "$cold_template" load -i "$work/base-oci.tar" >/dev/null
    printf 'FROM bench-base:1\nRUN true\n' > "$tctx/Dockerfile"
    "$cbuild" --root "$cold_template" -q -t unpack-base:1 "$tctx" >/dev/null   # unpacks the base
    "$cbuild" --root "$cold_template" rmi unpack-base:1 >/dev/null
    "$cbuild" --root "$cold_template" prune --all >/dev/null
    rm -rf "$tctx"; touch "$cold_template/.ready"
  fi
  rm -rf "$cold_root"; cp -a "$cold_template" "$cold_root"
}
cold_store() { [ "$2" = 1 ]; }   # scenario cold → does cbuild run in cold_root?
cbuild_root() { if cold_store "$1" "$2"; then echo "$cold_root"; else echo "$root"; fi; }

run_tool() {  # tool scenario ctx cold [main] → seconds; "main" keeps cbuild in the main store
  local tool=$1 s=$2 c=$3 cold=$4 t0 t1 flags=() r
  [ "$cold" = 1 ] && flags+=(--no-cache)
  r=$(cbuild_root "$s" "$cold"); [ "${5:-}" = main ] && r=$root
  t0=$(now)
  case $tool in
    cbuild) /usr/bin/time -f "%M" -o "$work/rss" "$cbuild" --root "$r" -q "${flags[@]}" -t "bench-${s,,}:1" "$c" >/dev/null ;;
    docker) /usr/bin/docker build -q --network=none "${flags[@]}" -t "bench-${s,,}:1" "$c" >/dev/null ;;
    buildah) "${BUILDAH[@]}" bud -q --layers --network=none "${flags[@]}" -t "bench-${s,,}:1" "$c" >/dev/null ;;
  esac
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

declare -A med
for s in $scenarios; do
  c=$(ctx "$s")
  cold=1; [ "$s" = S2 ] && cold=0; [ "$s" = S6 ] && cold=0
  for tool in cbuild docker buildah; do
    times=()
    for r in $(seq "$runs"); do
      if [ "$s" = S2 ]; then run_tool "$tool" "$s" "$c" 0 >/dev/null; fi   # warm up the cache
      if [ "$s" = S6 ]; then
        run_tool "$tool" "$s" "$c" 0 >/dev/null
        head -c 16777216 /dev/urandom > "$c/data/f7"   # one file changes
      fi
      [ "$tool" = cbuild ] && cold_store "$s" "$cold" && fresh_cold_root
      [ "$cold" = 1 ] && settle "$c"
      times+=("$(run_tool "$tool" "$s" "$c" "$cold")")
    done
    med[$s,$tool]=$(printf '%s\n' "${times[@]}" | median)
    extra=""; [ "$tool" = cbuild ] && extra="  peak RSS $(( $(cat "$work/rss") / 1024 )) MiB"
    printf '%-3s %-8s %-4s median %7.3fs  (runs: %s)%s\n' "$s" "$tool" "$(state "$cold")" "${med[$s,$tool]}" "${times[*]}" "$extra"
  done
  if [ "$s" = S3 ]; then
    # The layer-memo hit: --no-cache in a store that already holds the layer of these files.
    # It is a warm figure (nothing is compressed); it never stands in for the cold one above.
    run_tool cbuild S3 "$c" 0 >/dev/null
    times=()
    for r in $(seq "$runs"); do times+=("$(run_tool cbuild S3 "$c" 1 main)"); done
    printf '%-3s %-8s %-4s median %7.3fs  (runs: %s)  layer-memo hit, layer already stored\n' "$s" cbuild warm \
      "$(printf '%s\n' "${times[@]}" | median)" "${times[*]}"
  fi
  if [ "$s" = S5 ]; then
    # The command itself, bare in a chroot of the same base, in the same run: S5's goal is about
    # each builder's overhead beyond it.
    bare_root="$work/bare-rootfs"
    [ -d "$bare_root/bin" ] || cp -a "$work/base/rootfs" "$bare_root"   # the files of bench-base:1
    [ -c "$bare_root/dev/null" ] || { mkdir -p "$bare_root/dev"; mknod -m 666 "$bare_root/dev/null" c 1 3; mknod -m 666 "$bare_root/dev/zero" c 1 5; }
    times=()
    for r in $(seq "$runs"); do
      rm -f "$bare_root/big"; settle
      t0=$(now); chroot "$bare_root" /bin/sh -c 'dd if=/dev/zero of=/big bs=1M count=512 2>/dev/null && sync'; t1=$(now)
      times+=("$(echo "$t1 - $t0" | bc -l)")
    done
    rm -f "$bare_root/big"
    bare=$(printf '%s\n' "${times[@]}" | median)
    printf '%-3s bare     cold median %7.3fs  (runs: %s)\n' "$s" "$bare" "${times[*]}"
    printf '%-3s overhead beyond the bare command: cbuild %.3fs, docker %.3fs, ratio %.2f (goal <= 0.3)\n' "$s" \
      "$(echo "${med[$s,cbuild]} - $bare" | bc -l)" "$(echo "${med[$s,docker]} - $bare" | bc -l)" \
      "$(echo "(${med[$s,cbuild]} - $bare) / (${med[$s,docker]} - $bare)" | bc -l)"
  fi
  # Every cold or changed build leaves a layer of up to 1 GiB per tool behind (held by build
  # cache); drop them, so a full run does not fill the disk. Tags stay (bench-base:1 included).
  "$cbuild" --root "$root" prune --all >/dev/null; rm -rf "$cold_root"
  /usr/bin/docker builder prune -af >/dev/null; /usr/bin/docker image prune -f >/dev/null
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
  # Those deletes (S4's: 100,000 files per peer) leave this ext4 creating files ~10x slower for
  # about a minute, and the next scenario's first tool (always cbuild) would pay for them.
  sync; sleep "${PRUNE_SETTLE:-60}"
  best=$(printf '%s\n' "${med[$s,docker]}" "${med[$s,buildah]}" | sort -g | head -1)
  printf '%-3s cbuild / best peer = %.2f\n' "$s" "$(echo "${med[$s,cbuild]} / $best" | bc -l)"
done
