#!/usr/bin/env bash
# Push and pull of a 1 GiB, 3-layer image (gzip layers of random data) to a loopback
# docker-registry: cbuild vs `skopeo copy` of the same OCI layout, side by side in one run.
# Each timed push goes to a freshly started registry with empty storage (so nothing is skipped
# or mounted); each timed pull goes into an empty directory. Prints every run, then medians and
# ratios (skopeo / cbuild: above 1 means cbuild is faster). Every figure is warm: the pushed
# blobs were just written (page cache), and pulls read what the registry has just stored.
#
# Usage: bench/registry.sh [CBUILD_BINARY] [RUNS]   (default build-registry/cbuild, 3 runs)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
CBUILD=${1:-$here/build-registry/cbuild}
RUNS=${2:-3}
SIZE_MB=${BENCH_LAYER_MB:-341}
W=$(mktemp -d /var/tmp/cbuild-bench-registry.XXXXXX)
REG_PID=
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT

start_registry() {
  rm -rf "$W/reg"
  mkdir -p "$W/reg"
  cat >"$W/reg.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $W/reg
http:
  addr: $HOST
YML
  docker-registry serve "$W/reg.yml" >>"$W/reg.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 200); do
    curl -fs "http://$HOST/v2/" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "registry did not start" >&2; cat "$W/reg.log" >&2; exit 1
}
stop_registry() { kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; REG_PID=; }

# The image: an OCI layout that is also a cbuild store, tagged "localhost/bench:1".
echo "making a $((SIZE_MB * 3)) MiB image..." >&2
python3 - "$W/store" "$SIZE_MB" <<'PY'
import hashlib, json, os, subprocess, sys
root, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{root}/blobs/sha256", exist_ok=True)
def put(data):
    h = hashlib.sha256(data).hexdigest()
    open(f"{root}/blobs/sha256/{h}", "wb").write(data)
    return {"digest": "sha256:" + h, "size": len(data)}
layers, diffs = [], []
for i in range(3):
    raw = os.urandom(mb << 20)
    diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = subprocess.run(["pigz", "-1", "-n", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout
    layers.append(dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **put(gz)))
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **put(cfg)),
                  "layers": layers}).encode()
m = put(man)
open(f"{root}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json", **m,
                              annotations={"org.opencontainers.image.ref.name": "localhost/bench:1"})]},
          open(f"{root}/index.json", "w"))
PY

now() { date +%s.%N; }
declare -a SP CP SL CL
for i in $(seq "$RUNS"); do
  start_registry
  t0=$(now); skopeo copy -q --dest-tls-verify=false "oci:$W/store:localhost/bench:1" "docker://$HOST/bench/img:1"; t1=$(now)
  SP+=("$(echo "$t1 - $t0" | bc)")
  stop_registry; start_registry
  rm -rf "$W/store/registry"
  t0=$(now); "$CBUILD" --root "$W/store" push -q localhost/bench:1 "$HOST/bench/img:1" >/dev/null; t1=$(now)
  CP+=("$(echo "$t1 - $t0" | bc)")
  # Pulls from the registry that cbuild just filled (same bytes skopeo pushed).
  rm -rf "$W/pull"; t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$HOST/bench/img:1" "oci:$W/pull:x"; t1=$(now)
  SL+=("$(echo "$t1 - $t0" | bc)")
  rm -rf "$W/pull"; t0=$(now); "$CBUILD" --root "$W/pull" pull -q "$HOST/bench/img:1" >/dev/null; t1=$(now)
  CL+=("$(echo "$t1 - $t0" | bc)")
  rm -rf "$W/pull"
  stop_registry
  echo "run $i (warm): push skopeo ${SP[-1]}s cbuild ${CP[-1]}s | pull skopeo ${SL[-1]}s cbuild ${CL[-1]}s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
msp=$(median "${SP[@]}"); mcp=$(median "${CP[@]}"); msl=$(median "${SL[@]}"); mcl=$(median "${CL[@]}")
echo "image: 3 layers x ${SIZE_MB} MiB (gzip of random data), registry on $HOST, $RUNS runs"
echo "push (warm): skopeo median ${msp}s, cbuild median ${mcp}s, ratio $(echo "scale=2; $msp / $mcp" | bc)x"
echo "pull (warm): skopeo median ${msl}s, cbuild median ${mcl}s, ratio $(echo "scale=2; $msl / $mcl" | bc)x"
