#!/usr/bin/env bash
# Set-up command 1: install dependencies, build cbuild, and run its main job on an offline
# example from testdata/ (printing the resulting digest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
root=$(mktemp -d /tmp/cbuild-demo.XXXXXX)
trap 'rm -rf "$root"' EXIT
./build/cbuild --version
# The main job: build images from Dockerfiles, offline. The base is a busybox rootfs
# (Debian's busybox-static) copied into an image FROM scratch; the demo image builds on it
# with ARG/ENV/WORKDIR/COPY/RUN/CMD. Each build prints its image ID (the config digest).
export SOURCE_DATE_EPOCH=1700000000
base="$root/base"
mkdir -p "$base/rootfs/bin" "$base/rootfs/etc" "$base/rootfs/tmp"
cp /bin/busybox "$base/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$base/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$base/rootfs/etc/passwd"
printf 'root:x:0:\n' > "$base/rootfs/etc/group"
chmod 1777 "$base/rootfs/tmp"
echo "building demo-base:1 (FROM scratch + busybox) ..."
./build/cbuild --root "$root/store" -f testdata/demo/Dockerfile.base -t demo-base:1 --progress=plain "$base"
echo "building demo:latest from testdata/demo-context ..."
./build/cbuild --root "$root/store" -f testdata/demo/Dockerfile -t demo:latest --progress=plain testdata/demo-context
./build/cbuild --root "$root/store" images
echo "running demo:latest:"
./build/cbuild --root "$root/store" run --rm demo:latest
