# The inputs of the build benchmarks, sourced by bench/build.sh and bench/unprivileged.sh so
# both measure the same base and contexts: the busybox base bench-base:1 (made by cbuild FROM
# scratch, saved for the peers and other stores), the contexts of S1–S6, and the helpers that
# time runs and drop the page cache. Expects $cbuild and $work; needs root (drop_caches).

# make_base STORE: builds bench-base:1 in STORE and saves it as $work/base-docker.tar and
# $work/base-oci.tar (the same image: SOURCE_DATE_EPOCH=0).
make_base() {
  local store=$1 base_ctx="$work/base"
  rm -rf "$base_ctx"; mkdir -p "$base_ctx/rootfs/bin" "$base_ctx/rootfs/etc" "$base_ctx/rootfs/tmp"
  cp /bin/busybox "$base_ctx/rootfs/bin/"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$base_ctx/rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$base_ctx/rootfs/etc/passwd"
  printf 'root:x:0:\n' > "$base_ctx/rootfs/etc/group"
  chmod 1777 "$base_ctx/rootfs/tmp"
  printf 'FROM scratch\nCOPY rootfs/ /\n' > "$base_ctx/Dockerfile"
  SOURCE_DATE_EPOCH=0 "$cbuild" --root "$store" -q -t bench-base:1 "$base_ctx" >/dev/null
  "$cbuild" --root "$store" save --format docker -o "$work/base-docker.tar" bench-base:1
  "$cbuild" --root "$store" save --format oci -o "$work/base-oci.tar" bench-base:1
}

ctx() {  # scenario → context dir (made once)
  local d="$work/ctx-$1"
  [ -f "$d/.ready" ] && { echo "$d"; return; }
  rm -rf "$d"; mkdir -p "$d"
  case $1 in
    S1|S2) printf 'FROM bench-base:1\nRUN echo hello > /hello && mkdir -p /app\nENV APP=/app\nCMD ["sh"]\n' > "$d/Dockerfile" ;;
    S3|S6) mkdir -p "$d/data"
           for i in $(seq 1 64); do head -c 16777216 /dev/urandom > "$d/data/f$i"; done
           printf 'FROM bench-base:1\nCOPY data /data\n' > "$d/Dockerfile" ;;
    S4) python3 - "$d/files" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(100000):
    d = os.path.join(root, "d%03d" % (i // 1000))
    if i % 1000 == 0: os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f: f.write(os.urandom(1024))
PY
        printf 'FROM bench-base:1\nCOPY files /files\n' > "$d/Dockerfile" ;;
    S5) printf 'FROM bench-base:1\nRUN dd if=/dev/zero of=/big bs=1M count=512 2>/dev/null && sync\n' > "$d/Dockerfile" ;;
  esac
  touch "$d/.ready"; echo "$d"
}

# Reads the context back through a pipe: GNU tar writing straight to /dev/null skips file data.
settle() { sync; echo 3 > /proc/sys/vm/drop_caches; sleep "${SETTLE:-3}"; [ -n "${1:-}" ] && tar -cf - -C "$1" . | cat >/dev/null; true; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
state() { if [ "$1" = 1 ]; then echo cold; else echo warm; fi; }
