#!/usr/bin/env bash
# Builds the cbuild image (packaging/Dockerfile) with cbuild itself, from files of this machine
# only: no base image, no network. It builds cbuild if needed, gathers into a build context
# the binary, the shared libraries it and libcurl need (with the loader), newuidmap/newgidmap
# and theirs, a static busybox for CI shells, the CA bundle and the few /etc files a non-root user needs, then runs
#   cbuild -f packaging/Dockerfile -t TAG [FLAGS...] CONTEXT
#
# usage: scripts/package.sh [-t TAG] [-B BUILD_DIR] [-C CONTEXT_DIR] [-- CBUILD BUILD FLAGS...]
#   TAG          default cbuild:dev
#   BUILD_DIR    cbuild's CMake build directory (default build)
#   CONTEXT_DIR  where the build context is assembled (default BUILD_DIR/package), replaced
# Flags after `--` go to `cbuild build` (e.g. --root DIR, -o type=docker,dest=cbuild.tar, --push).
#
# Why not one static binary: libcurl is loaded with dlopen (registry-client/internal/curl_api.h)
# and Debian ships no static archives for several of its dependencies (libgssapi_krb5, libldap,
# libnghttp2, libpsl, libssh2, librtmp), nor for liblz4 and libisal; a static glibc could not
# dlopen libcurl anyway. So the image holds the dynamic binary with exactly the libraries ldd
# names, at the paths ldd names, and the loader. docs/ci.md says the same.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tag=cbuild:dev
build=$here/build
ctx=
while (($#)); do
  case $1 in
    -t) tag=$2; shift 2 ;;
    -B) build=$2; shift 2 ;;
    -C) ctx=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "package.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
ctx=${ctx:-$build/package}

if [ ! -x "$build/cbuild" ]; then
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j2 --target cbuild
fi
cbuild=$build/cbuild

need() { [ -e "$1" ] || { echo "package.sh: $1 is missing ($2)" >&2; exit 1; }; }
need /usr/bin/newuidmap "install the Debian package uidmap"
need /usr/bin/newgidmap "install the Debian package uidmap"
command -v setcap >/dev/null || { echo "package.sh: setcap is missing (install the Debian package libcap2-bin)" >&2; exit 1; }
need /bin/busybox "install the Debian package busybox-static"
need /etc/ssl/certs/ca-certificates.crt "install the Debian package ca-certificates"
curl_so=$(ldconfig -p | awk '$1 == "libcurl.so.4" && /x86-64/ { print $NF; exit }')
[ -n "$curl_so" ] || { echo "package.sh: libcurl.so.4 is missing (install libcurl4)" >&2; exit 1; }

rm -rf "$ctx"
root=$ctx/rootfs
mkdir -p "$root"/{bin,usr/local/bin,usr/bin,etc/ssl/certs,tmp,home} "$ctx/home/cbuild/.local/share/cbuild" "$ctx/home/cbuild/.docker"

# Every file a binary needs from the loader: its DT_NEEDED closure (ldd), and the loader itself.
copy_libs() {
  ldd "$1" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }' | while read -r lib; do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    chmod 0755 "$root$lib"
  done
}
install -m 0755 "$cbuild" "$root/usr/local/bin/cbuild"
# With file capabilities, not setuid root as the uidmap package installs them: a setuid
# newuidmap opens /proc/PID/uid_map as euid 0, and the kernel then asks for CAP_SYS_ADMIN,
# which a container with docker's default capabilities lacks (EPERM on the write). With
# cap_setuid/cap_setgid the opener stays the user, who owns the new namespace.
# COPY takes no extended attributes from the context, so the two go in as a tar that ADD
# unpacks with its SCHILY.xattr.security.capability records.
idmap=$ctx/idmap
mkdir -p "$idmap/usr/bin"
install -m 0755 /usr/bin/newuidmap "$idmap/usr/bin/newuidmap"
install -m 0755 /usr/bin/newgidmap "$idmap/usr/bin/newgidmap"
setcap cap_setuid=ep "$idmap/usr/bin/newuidmap"
setcap cap_setgid=ep "$idmap/usr/bin/newgidmap"
tar --xattrs --xattrs-include=security.capability --numeric-owner --owner=0 --group=0 -C "$idmap" \
  -cf "$ctx/idmap.tar" usr/bin/newuidmap usr/bin/newgidmap
rm -rf "$idmap"
mkdir -p "$root$(dirname "$curl_so")"
install -m 0755 "$curl_so" "$root$curl_so"
for bin in "$cbuild" "$curl_so" /usr/bin/newuidmap /usr/bin/newgidmap; do copy_libs "$bin"; done
# A static busybox as /bin/sh and a few tools: GitLab's Kubernetes executor and GitHub's
# container jobs run their scripts with sh (and keep the container up with tail).
install -m 0755 /bin/busybox "$root/bin/busybox"
for t in sh tail cat echo env ls mkdir printf base64 id sleep; do ln -s busybox "$root/bin/$t"; done
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$root/tmp"

# The user: uid 1000 "cbuild". Its subordinate ids are 1-999 and 1001-65535: all inside the
# 65536 ids a Kubernetes user-namespaced pod (hostUsers: false) maps, and never its own id.
printf 'root:x:0:0:root:/root:/sbin/nologin\ncbuild:x:1000:1000:cbuild:/home/cbuild:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\ncbuild:x:1000:\n' >"$root/etc/group"
printf 'cbuild:1:999\ncbuild:1001:64535\n' >"$root/etc/subuid"
printf 'cbuild:1:999\ncbuild:1001:64535\n' >"$root/etc/subgid"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 0644 "$root"/etc/{passwd,group,subuid,subgid,nsswitch.conf}

exec "$cbuild" build -f "$here/packaging/Dockerfile" -t "$tag" "$@" "$ctx"
