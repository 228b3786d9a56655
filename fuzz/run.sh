#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) and runs them.
#   fuzz/run.sh [SECONDS=600] [JOBS=1] [TARGET=all]
# TARGET is dockerfile, layer_tar, context or all (each target then runs SECONDS).
# Seeds: a few Dockerfiles of our own, plus the BuildKit conformance Dockerfiles and shell
# vectors when CBUILD_CONFORMANCE_DIR names that data (it is not part of the project), for
# dockerfile; small generated tars (plain, gzip, zstd) for layer_tar; a few trees for context.
# Work files go to ${FUZZ_DIR:-/tmp/cbuild-fuzz}/TARGET; crashes are saved there as crash-*.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:-600}
jobs=${2:-1}
target=${3:-all}
out=${FUZZ_DIR:-/tmp/cbuild-fuzz}
conf=${CBUILD_CONFORMANCE_DIR:+$CBUILD_CONFORMANCE_DIR/buildkit/frontend/dockerfile}
command -v clang++ >/dev/null || { echo "fuzz/run.sh: clang++ missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
case "$target" in dockerfile|layer_tar|context|all) ;; *)
  echo "fuzz/run.sh: unknown target $target (dockerfile, layer_tar, context or all)" >&2; exit 2;;
esac
cxx=(clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$root")
front_end=("$root"/builder/dockerfile/*.cpp "$root"/builder/plan/planner.cpp "$root"/builder/dockerfile/valid_utf8.cpp "$root"/builder/context/dockerignore.cpp
           "$root"/oci/base/error.cpp "$root"/oci/base/fs.cpp)

build_dockerfile() {
  "${cxx[@]}" "$here/dockerfile_fuzz.cpp" "${front_end[@]}" -o "$1/dockerfile_fuzz"
  local i=0
  printf 'FROM busybox AS b\nARG V=1\nENV P=${V:-x}/bin\nRUN echo $P \\\n  && true\nCOPY --from=b /a /b\n' > "$1/seeds/own0"
  printf '# escape=`\nFROM scratch\nRUN <<EOF\necho ${HOME%%%%/*}\nEOF\nONBUILD RUN ["sh", "-c", "x"]\n' > "$1/seeds/own1"
  if [ -z "$conf" ]; then
    echo "fuzz/run.sh: CBUILD_CONFORMANCE_DIR unset: dockerfile seeds are our own only" >&2
    return
  fi
  [ -d "$conf" ] || { echo "fuzz/run.sh: $conf: no such directory (CBUILD_CONFORMANCE_DIR)" >&2; exit 1; }
  for f in "$conf"/parser/testfiles/*/Dockerfile "$conf"/parser/testfiles-negative/*/Dockerfile \
           "$conf"/parser/testfile-line/Dockerfile; do
    cp "$f" "$1/seeds/df$((i++))"
  done
  while IFS= read -r line; do printf '%s' "$line" > "$1/seeds/sh$((i++))"; done \
    < <(grep -v '^#' "$conf/shell/envVarTest" | cut -d'|' -f2)
}

build_layer_tar() {
  # The reader with its codecs, and the applier with the path resolution it relies on.
  local srcs=("$root"/oci/tar_reader.cpp "$root"/oci/compression.cpp "$root"/oci/stream.cpp "$root"/oci/sinks.cpp
              "$root"/oci/internal/*.cpp "$root"/oci/base/*.cpp "$root"/oci/digest.cpp "$root"/oci/checksum.cpp
              "$root"/overlay/applier.cpp "$root"/overlay/safe_path.cpp "$root"/overlay/whiteout.cpp
              "$root"/overlay/sys/syscalls.cpp)
  local defs=()
  if pkg-config --exists libisal 2>/dev/null; then
    defs=(-DCBUILD_HAVE_ISAL=1 "-DCBUILD_ISAL_VERSION=\"$(pkg-config --modversion libisal)\"" -lisal)
  fi
  "${cxx[@]}" -DCBUILD_VERSION='"fuzz"' "$here/layer_tar_fuzz.cpp" "${srcs[@]}" "${defs[@]}" \
    -larchive -lcrypto -lz -lzstd -lpthread -o "$1/layer_tar_fuzz"
  python3 - "$1/seeds" <<'EOF'
import io, sys, tarfile
out = sys.argv[1]
def add(t, name, kind=tarfile.REGTYPE, data=b"", link="", pax=None):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = link; i.size = len(data); i.mode = 0o644
    if pax: i.pax_headers = pax
    t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
layers = {
  "basic": [("a/", tarfile.DIRTYPE), ("a/f", tarfile.REGTYPE, b"hello"), ("a/l", tarfile.SYMTYPE, b"", "f"),
            ("a/h", tarfile.LNKTYPE, b"", "a/f"), ("a/.wh.gone", tarfile.REGTYPE), ("a/.wh..wh..opq", tarfile.REGTYPE)],
  "escape": [("up", tarfile.SYMTYPE, b"", "../../.."), ("up/x", tarfile.REGTYPE, b"x"), ("../y", tarfile.REGTYPE, b"y"),
             ("abs", tarfile.SYMTYPE, b"", "/"), ("abs/etc/z", tarfile.REGTYPE, b"z"), ("hl", tarfile.LNKTYPE, b"", "../../etc/passwd")],
  "special": [("fifo", tarfile.FIFOTYPE), ("dev", tarfile.CHRTYPE), ("./", tarfile.DIRTYPE),
              ("x", tarfile.REGTYPE, b"1", "", {"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.overlay.opaque": "y"})],
}
for name, entries in layers.items():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            add(t, e[0], e[1], *(e[2:]))
    open(f"{out}/{name}.tar", "wb").write(buf.getvalue())
EOF
  for f in "$1"/seeds/*.tar; do gzip -c "$f" > "$f.gz"; zstd -q -c "$f" > "$f.zst"; done
}

build_context() {
  "${cxx[@]}" "$here/context_fuzz.cpp" "$root"/builder/context/context.cpp "$root"/builder/context/dockerignore.cpp \
    "$root"/builder/dockerfile/unicode.cpp "$root"/oci/base/error.cpp "$root"/oci/base/fs.cpp -o "$1/context_fuzz"
  printf 'a\n!a/keep\n**/*.log\0\001a\n\001a/keep\n\000a/keep/x\n\000b.log\n\002l\n/etc\n\002a/up\n../..\n' > "$1/seeds/c0"
  printf '*\n!*.c\n!d/**\0\000x.c\n\000d/e/f\n\003d/y\nbody\n\001e\n\002e/z\n.\n' > "$1/seeds/c1"
  printf '\0\001.\n\000./a/../b\n\002c\nc\n' > "$1/seeds/c2"
}

run_target() {
  local t=$1 dir="$out/$1"
  mkdir -p "$dir/corpus" "$dir/seeds"
  "build_$t" "$dir"
  # -timeout flags any input slower than 10 s (a hang); -max_len allows multi-KB inputs.
  (cd "$dir" && "./${t}_fuzz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
     -jobs="$jobs" -workers="$jobs" -print_final_stats=1 corpus seeds)
}

if [ "$target" = all ]; then
  for t in dockerfile layer_tar context; do run_target "$t"; done
else
  run_target "$target"
fi
