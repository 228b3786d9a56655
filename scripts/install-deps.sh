#!/usr/bin/env bash
# Installs everything cbuild needs to build, test and benchmark on a fresh Debian 12 machine.
# Called by the README set-up and by .ci/run. Idempotent: a second run installs nothing.
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config ccache
  libarchive-dev libssl-dev libcurl4-openssl-dev zlib1g-dev libisal-dev libzstd-dev
  liblzma-dev libbz2-dev nettle-dev  # libarchive.a's dependencies (cmake/deps.cmake)
  nlohmann-json3-dev doctest-dev libcli11-dev
  libseccomp-dev  # the sandbox's system call filter (overlay/seccomp_filter.cpp)
)
test_pkgs=(
  python3-jsonschema skopeo umoci runc docker-registry busybox-static docker.io buildah
  apache2-utils openssl curl zstd pigz bc bzip2 xz-utils iproute2 e2fsprogs
  clang  # fuzz/run.sh (libFuzzer); not needed by the build or the suite
  uidmap  # newuidmap/newgidmap: rootless mode maps /etc/subuid ranges with them (and its tests)
  libcap2-bin ca-certificates  # scripts/package.sh: setcap on newuidmap/newgidmap, the CA bundle
)

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
