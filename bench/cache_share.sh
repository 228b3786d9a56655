#!/usr/bin/env bash
# S8 — a build cache shared through a registry (issue: registry-shared cache, Speed): runner A
# builds a project with its cache exported and the image pushed; runner B, on an EMPTY store,
# builds the same sources with that cache imported and pushes the image to the same registry.
# Side by side, in one run:
#   cbuild   A: --cache-to type=registry,ref=REG/P-cache --push     B: --cache-from REG/P-cache --push
#   buildah  A: bud --layers --cache-to REG/P-bcache; push           B: bud --layers --cache-from REG/P-bcache; push
#   docker   A: build --build-arg BUILDKIT_INLINE_CACHE=1; push      B: build --cache-from REG/P:a; push
#            (docker 20.10's BuildKit; its registry cache exporter needs buildx, which is not
#            packaged here, so the inline cache is docker's registry-shared cache)
# Scenarios: S3 (COPY of a 1 GiB context), S5 (RUN writing 512 MiB), and S3c: runner B builds
# the S3 context with one 16 MiB file changed (that COPY misses; the new layer is pushed).
# Every (scenario, run, tool) gets a freshly started registry holding only the base image
# (bench-base:1 of bench/build_inputs.sh, pushed with cbuild), so no tool finds another's
# blobs. Runner A is untimed setup. Runner B is timed from an empty store (buildah: a new
# --root; docker: `docker system prune -af` then `docker builder prune -af`; cbuild: a new
# --root) after the page cache is dropped and the context read back once (bench/build_inputs.sh
# settle) — labelled "cold store": nothing of the project is on the runner, and the registry
# holds runner A's upload. B's time covers build and push (buildah and docker push as a second
# command).
# Network for RUN: the host's for cbuild and buildah (buildah's chroot isolation has no other),
# none for docker (this machine has no bridge); S5's RUN uses no network.
# Bytes moved: iptables counters on the loopback registry port (client → registry and
# registry → client), read before and after runner B: every byte on the wire — layers,
# manifests, configs, HTTP headers, the base image's pull — so "0 layer bytes" shows as a total
# of a few kilobytes against a 1 GiB image. Each run also says whether runner B's pushed image
# has runner A's layers (every step a cache hit; expected to differ on S3c, whose COPY misses).
# Tools take turns run by run.
# Goals: B at most 0.1× the best peer's time, 0 layer bytes, under 1 s on S3; S3c at most 0.3×.
# usage: bench/cache_share.sh [BUILD_DIR] [SCENARIOS…]
#        (default: S3 S5 S3c; RUNS=3; TOOLS="cbuild buildah docker"; WORK=/var/tmp/cbuild-bench-cache;
#         PORT=5077)
# Needs root, docker.io, buildah, docker-registry and iptables (scripts/install-deps.sh).
set -euo pipefail
shopt -s inherit_errexit
umask 022
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}; shift || true
scenarios=${*:-S3 S5 S3c}
runs=${RUNS:-3}
tools=${TOOLS:-cbuild buildah docker}
work=${WORK:-/var/tmp/cbuild-bench-cache}
port=${PORT:-5077}
reg=127.0.0.1:$port
cbuild=$(realpath "$build/cbuild")
[ -x "$cbuild" ] || { echo "build cbuild first ($cbuild)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "cache_share.sh: run as root (it drops caches and counts bytes with iptables)" >&2; exit 2; }
mkdir -p "$work"
. "$here/bench/build_inputs.sh"

reg_pid=
dockerd_pid=
cleanup() {
  [ -n "$reg_pid" ] && { kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; }
  [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null || true
  iptables -w -D OUTPUT -o lo -p tcp --dport "$port" -m comment --comment cbuild-bench-up 2>/dev/null || true
  iptables -w -D OUTPUT -o lo -p tcp --sport "$port" -m comment --comment cbuild-bench-down 2>/dev/null || true
}
trap cleanup EXIT

# --- byte counters: every packet on lo passes OUTPUT once ----------------------------------
iptables -w -A OUTPUT -o lo -p tcp --dport "$port" -m comment --comment cbuild-bench-up
iptables -w -A OUTPUT -o lo -p tcp --sport "$port" -m comment --comment cbuild-bench-down
counter() { iptables -w -nvxL OUTPUT | awk -v c="$1" '$0 ~ c {print $2; exit}'; }

# --- the registry, fresh for every measurement ---------------------------------------------
start_registry() {
  [ -n "$reg_pid" ] && { kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true; reg_pid=; }
  rm -rf "$work/reg"; mkdir -p "$work/reg"
  cat > "$work/reg.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/reg
http:
  addr: $reg
YML
  docker-registry serve "$work/reg.yml" >>"$work/reg.log" 2>&1 &
  reg_pid=$!
  for _ in $(seq 200); do curl -fs "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.05; done
  curl -fs "http://$reg/v2/" >/dev/null || { echo "registry did not start" >&2; tail "$work/reg.log" >&2; exit 1; }
  "$cbuild" --root "$work/base-store" push -q bench-base:1 "$reg/bench-base:1" >/dev/null
}

# --- docker: a private dockerd (BuildKit) ---------------------------------------------------
dockerd_dir="$work/dockerd"
export DOCKER_HOST="unix://$dockerd_dir/docker.sock" DOCKER_BUILDKIT=1
case " $tools " in *" docker "*)
  if ! /usr/bin/docker version >/dev/null 2>&1; then
    mkdir -p "$dockerd_dir"
    echo '{"features":{"buildkit":true},"storage-driver":"overlay2","iptables":false,"ip6tables":false,"ip-masq":false,"bridge":"none","log-level":"warn"}' > "$dockerd_dir/daemon.json"
    setsid /usr/sbin/dockerd --config-file "$dockerd_dir/daemon.json" --data-root "$dockerd_dir/data" \
      --exec-root "$dockerd_dir/exec" --pidfile "$dockerd_dir/pid" -H "$DOCKER_HOST" >"$dockerd_dir/log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 100); do /usr/bin/docker version >/dev/null 2>&1 && break; sleep 0.3; done
  fi ;;
esac
docker_empty() { /usr/bin/docker system prune -af >/dev/null; /usr/bin/docker builder prune -af >/dev/null; }
BUILDAH_FLAGS=(--storage-driver overlay)
export BUILDAH_ISOLATION=chroot

# --- inputs ---------------------------------------------------------------------------------
if [ ! -f "$work/base.ready" ]; then
  rm -rf "$work/base-store"; make_base "$work/base-store"; touch "$work/base.ready"
fi
dockerfile() {  # scenario → a Dockerfile outside the context, FROM the registry's base
  local f="$work/Dockerfile.$1"
  case $1 in
    S3|S3c) printf 'FROM %s/bench-base:1\nCOPY data /data\n' "$reg" > "$f" ;;
    S5) printf 'FROM %s/bench-base:1\nRUN dd if=/dev/zero of=/big bs=1M count=512 2>/dev/null && sync\n' "$reg" > "$f" ;;
  esac
  echo "$f"
}
project() { case $1 in S3c) echo s3;; *) echo "${1,,}";; esac; }
context() { case $1 in S3c) ctx S3;; *) ctx "$1";; esac; }

# Runner A (untimed): builds and pushes P:a with the tool's shared cache.
runner_a() {  # tool scenario
  local t=$1 s=$2 p df c; p=$(project "$2"); df=$(dockerfile "$s"); c=$(context "$s")
  case $t in
    cbuild) rm -rf "$work/a-store"
            "$cbuild" --root "$work/a-store" build -q -f "$df" \
              --cache-to "type=registry,ref=$reg/$p-cache" --push -t "$reg/$p:a" "$c" >/dev/null
            rm -rf "$work/a-store" ;;
    buildah) rm -rf "$work/a-buildah"
             buildah --root "$work/a-buildah/root" --runroot "$work/a-buildah/run" "${BUILDAH_FLAGS[@]}" bud -q \
               --layers --tls-verify=false --cache-to "$reg/$p-bcache" -f "$df" -t "$reg/$p:a" "$c" >/dev/null
             buildah --root "$work/a-buildah/root" --runroot "$work/a-buildah/run" "${BUILDAH_FLAGS[@]}" push -q \
               --tls-verify=false "$reg/$p:a" >/dev/null
             rm -rf "$work/a-buildah" ;;
    docker) docker_empty
            /usr/bin/docker build -q --network=none --build-arg BUILDKIT_INLINE_CACHE=1 -f "$df" -t "$reg/$p:a" "$c" >/dev/null
            /usr/bin/docker push -q "$reg/$p:a" >/dev/null
            docker_empty ;;
  esac
}

# Runner B (timed, empty store): prints "seconds up_bytes down_bytes".
runner_b() {  # tool scenario
  local t=$1 s=$2 p df c t0 t1 u0 d0; p=$(project "$2"); df=$(dockerfile "$s"); c=$(context "$s")
  case $t in
    cbuild) rm -rf "$work/b-store" ;;
    buildah) rm -rf "$work/b-buildah" ;;
    docker) docker_empty ;;
  esac
  settle "$c"
  u0=$(counter cbuild-bench-up); d0=$(counter cbuild-bench-down); t0=$(now)
  case $t in
    cbuild) "$cbuild" --root "$work/b-store" build -q -f "$df" \
              --cache-from "$reg/$p-cache" --push -t "$reg/$p:b" "$c" >/dev/null ;;
    buildah) buildah --root "$work/b-buildah/root" --runroot "$work/b-buildah/run" "${BUILDAH_FLAGS[@]}" bud -q \
               --layers --tls-verify=false --cache-from "$reg/$p-bcache" -f "$df" -t "$reg/$p:b" "$c" >/dev/null
             buildah --root "$work/b-buildah/root" --runroot "$work/b-buildah/run" "${BUILDAH_FLAGS[@]}" push -q \
               --tls-verify=false "$reg/$p:b" >/dev/null ;;
    docker) /usr/bin/docker build -q --network=none --cache-from "$reg/$p:a" -f "$df" -t "$reg/$p:b" "$c" >/dev/null
            /usr/bin/docker push -q "$reg/$p:b" >/dev/null ;;
  esac
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc) $(( $(counter cbuild-bench-up) - u0 )) $(( $(counter cbuild-bench-down) - d0 ))"
  case $t in
    cbuild) rm -rf "$work/b-store" ;;
    buildah) rm -rf "$work/b-buildah" ;;
    docker) docker_empty ;;
  esac
}

# Whether runner B's image has runner A's layers (every step a cache hit): "hit" or "MISS".
layers_of() {  # reference path (REPO:TAG) → the manifest's layer digests
  curl -fs -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$reg/v2/${1%%:*}/manifests/${1##*:}" |
    python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))'
}
same_layers() { if [ "$(layers_of "$1")" = "$(layers_of "$2")" ]; then echo hit; else echo MISS; fi; }

# S3c: one 16 MiB file of the S3 context is replaced for runner B, and restored after.
change_one() { local d; d=$(ctx S3); cp "$d/data/f1" "$work/f1.orig"; head -c 16777216 /dev/urandom > "$d/data/f1"; }
restore_one() { local d; d=$(ctx S3); cp "$work/f1.orig" "$d/data/f1"; }

human() { numfmt --to=iec --suffix=B "$1"; }
declare -A secs ups downs
for s in $scenarios; do
  for r in $(seq "$runs"); do
    for t in $tools; do
      start_registry
      runner_a "$t" "$s"
      [ "$s" = S3c ] && change_one
      read -r sec up down < <(runner_b "$t" "$s")
      [ "$s" = S3c ] && restore_one
      secs[$s,$t]+="$sec "; ups[$s,$t]+="$up "; downs[$s,$t]+="$down "
      p=$(project "$s")
      echo "$s run $r $t: runner B ${sec}s, to registry $(human "$up"), from registry $(human "$down")," \
        "layers of A's image: $(same_layers "$p:a" "$p:b")" >&2
      sleep "${SETTLE:-3}"
    done
  done
  best_peer=
  for t in $tools; do
    m=$(printf '%s\n' ${secs[$s,$t]} | median)
    mu=$(printf '%s\n' ${ups[$s,$t]} | median); md=$(printf '%s\n' ${downs[$s,$t]} | median)
    printf '%-4s %-8s runner B cold store  median %8.3fs  bytes to registry %8s  from registry %8s  (runs: %s)\n' \
      "$s" "$t" "$m" "$(human "${mu%.*}")" "$(human "${md%.*}")" "${secs[$s,$t]}"
    if [ "$t" != cbuild ] && { [ -z "$best_peer" ] || (( $(echo "$m < $best_peer" | bc) )); }; then best_peer=$m; fi
  done
  case " $tools " in *" cbuild "*)
    if [ -n "$best_peer" ]; then
      m=$(printf '%s\n' ${secs[$s,cbuild]} | median)
      goal=0.1; [ "$s" = S3c ] && goal=0.3
      printf '%-4s cbuild / best peer = %.3f  (goal <= %s)\n' "$s" "$(echo "$m / $best_peer" | bc -l)" "$goal"
    fi ;;
  esac
done
