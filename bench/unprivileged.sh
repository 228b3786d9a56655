#!/usr/bin/env bash
# Unprivileged build benchmarks (issue: builds without privileges, Speed), on the inputs of
# bench/build.sh (bench/build_inputs.sh: the same busybox base and S1–S6), in one run:
#   rootless  cbuild run by an unprivileged user (rootless mode: its own user namespace with
#             the user's subordinate ids) beside cbuild run by root, on S1–S6; prints
#             rootless / root per scenario (goal <= 1.1).
#   chroot    cbuild --isolation=chroot as root (a container's root) beside
#             `buildah bud --isolation chroot --storage-driver vfs`, on CHROOT_SCENARIOS
#             (default S1 S3 S4 S5 S6); prints buildah / cbuild (goal >= 2 on S3, S4 and S6).
# Every figure is labelled cold or warm as in bench/build.sh: S1, S3, S4, S5 are cold
# (--no-cache after dropping the page cache; each cbuild in a fresh copy of a store holding
# only the unpacked base, made the same way as its own level and owner), S2 (no-op rebuild of
# S1) and S6 (rebuild of S3 after one file changed) are warm. The tools of a scenario take
# turns run by run, so load from elsewhere on the machine falls on all of them alike.
# Both levels run with the host's network (buildah's chroot isolation has no other).
# The user (cbuild-bench, or $CBUILD_BENCH_USER) is made once with useradd -m, which gives it a
# subordinate id range; its stores, scratch ($TMPDIR) and HOME are its own, under WORK, and so
# is its XDG_RUNTIME_DIR (a 0700 directory it owns, as systemd-logind gives a logged-in user),
# where a rootless cbuild records the keeper of its user namespace: the first rootless command
# makes the namespace, later ones join it (docs/rootless.md). The keeper is stopped at the end. Every
# cbuild, root's too, is started the same way, by setpriv (the user's ids, or 0) with a clean
# environment (env -i), so the launch costs the same on both sides of a ratio.
# A cold run's store is removed after it, and a run waits SETTLE seconds (default 3; S4: 20, as
# deleting 100,000 files leaves this ext4 creating files slowly for a while) after that; after
# each scenario everything is pruned and the disk left PRUNE_SETTLE seconds (60), as in
# bench/build.sh.
# S1 and S2 take a fraction of a second, where a busy machine's scheduling moves a figure by
# half: they run RUNS_SMALL times (11), the others RUNS times (3).
# usage: bench/unprivileged.sh [BUILD_DIR] [SCENARIOS…]
#        (default: S1–S6; RUNS=3; RUNS_SMALL=11; WORK=/var/tmp/cbuild-bench-unprivileged;
#         LEVELS="rootless chroot", either alone measures only that pair;
#         CHROOT_SCENARIOS="S1 S3 S4 S5 S6")
# Needs root, buildah and uidmap (scripts/install-deps.sh).
set -euo pipefail
shopt -s inherit_errexit
umask 022
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}; shift || true
scenarios=${*:-S1 S2 S3 S4 S5 S6}
chroot_scenarios=${CHROOT_SCENARIOS:-S1 S3 S4 S5 S6}
levels=${LEVELS:-rootless chroot}
runs=${RUNS:-3}
work=${WORK:-/var/tmp/cbuild-bench-unprivileged}
user=${CBUILD_BENCH_USER:-cbuild-bench}
cbuild=$(realpath "$build/cbuild")
[ -x "$cbuild" ] || { echo "build cbuild first ($cbuild)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "unprivileged.sh: run as root (it creates the user and drops caches)" >&2; exit 2; }
mkdir -p "$work"; chmod 0755 "$work"
. "$here/bench/build_inputs.sh"

# --- the user ----------------------------------------------------------------------------
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
grep -q "^$user:" /etc/subuid && grep -q "^$user:" /etc/subgid ||
  { echo "unprivileged.sh: $user has no subordinate id range in /etc/subuid and /etc/subgid" >&2; exit 2; }
uid=$(id -u "$user") gid=$(id -g "$user")
home="$work/home"    # the user's: its stores, scratch and HOME
mkdir -p "$home/tmp" "$home/run" "$work/root-tmp"
chown "$uid:$gid" "$home" "$home/tmp" "$home/run"; chmod 0700 "$home/run"   # not what is in it
trap 'pkill -TERM -U "$uid" -x cbuild-userns || true' EXIT
clean_env=(env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin)
as_user=(setpriv --reuid="$uid" --regid="$gid" --clear-groups "${clean_env[@]}" HOME="$home" TMPDIR="$home/tmp"
  XDG_RUNTIME_DIR="$home/run")
as_root=(setpriv --reuid=0 --regid=0 --clear-groups "${clean_env[@]}" HOME=/root TMPDIR="$work/root-tmp")

# --- the base, in every store and in buildah's -------------------------------------------
export BUILDAH_ISOLATION=chroot
BUILDAH=(buildah --root "$work/buildah-vfs/root" --runroot "$work/buildah-vfs/run" --storage-driver vfs)
# kind → how cbuild runs (root: as root, the default isolation; rootless: as the user; chroot:
# as root with --isolation=chroot) and where its stores are.
cb() { local k=$1; shift
  case $k in
    rootless) "${as_user[@]}" "$cbuild" "$@" ;;
    *) "${as_root[@]}" "$cbuild" "$@" ;;
  esac
}
cb_build() { local k=$1; shift   # --isolation is a build flag; the chroot level's notice is dropped
  case $k in
    chroot) cb "$k" --isolation=chroot "$@" 2> >(grep -v '^cbuild: isolation chroot:' >&2) ;;
    *) cb "$k" "$@" ;;
  esac
}
store_dir() { if [ "$1" = rootless ]; then echo "$home/$2"; else echo "$work/$1-$2"; fi; }
if [ ! -f "$work/base.ready" ]; then
  rm -rf "$work/make-base-store"; make_base "$work/make-base-store"; rm -rf "$work/make-base-store"
  chmod 0644 "$work/base-oci.tar"
  for k in root rootless chroot; do
    for s in main template; do
      d=$(store_dir $k $s); rm -rf "$d"
      cb $k --root "$d" load -i "$work/base-oci.tar" >/dev/null
    done
    # The template of a cold store: the base unpacked as this level unpacks it, no build cache.
    t=$(store_dir $k template) tctx="$work/template-ctx"
    rm -rf "$tctx"; mkdir -p "$tctx"; printf 'FROM bench-base:1\nRUN true\n' > "$tctx/Dockerfile"
    cb_build $k --root "$t" -q -t unpack-base:1 "$tctx" >/dev/null
    cb $k --root "$t" rmi unpack-base:1 >/dev/null
    cb $k --root "$t" prune --all >/dev/null
    rm -rf "$tctx"
  done
  rm -rf "$work/buildah-vfs"
  "${BUILDAH[@]}" pull -q "oci-archive:$work/base-oci.tar" >/dev/null
  "${BUILDAH[@]}" tag "$("${BUILDAH[@]}" images -q | head -1)" localhost/bench-base:1 docker.io/library/bench-base:1
  touch "$work/base.ready"
fi

# --- one run -----------------------------------------------------------------------------
fresh_cold() {  # kind → a copy of its template, owned as the template is
  local c; c=$(store_dir "$1" cold)
  rm -rf "$c"; cp -a "$(store_dir "$1" template)" "$c"
}
drop_cold() { rm -rf "$(store_dir "$1" cold)"; }
run_tool() {  # kind scenario ctx cold → seconds
  local k=$1 s=$2 c=$3 cold=$4 t0 t1 flags=() store
  store=$(store_dir "$k" main)
  if [ "$cold" = 1 ] && [ "$k" != buildah ]; then flags+=(--no-cache); store=$(store_dir "$k" cold); fi
  [ "$cold" = 1 ] && [ "$k" = buildah ] && flags+=(--no-cache)
  t0=$(now)
  case $k in
    buildah) "${BUILDAH[@]}" bud --isolation chroot -q --layers "${flags[@]}" -t "bench-${s,,}:1" "$c" >/dev/null ;;
    *) cb_build "$k" --root "$store" -q "${flags[@]}" -t "bench-${s,,}:1" "$c" >/dev/null ;;
  esac
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
prune_all() {  # what a scenario left: layers of up to 1 GiB per tool; tags stay
  local k
  for k in root rootless chroot; do cb $k --root "$(store_dir $k main)" prune --all >/dev/null; drop_cold $k; done
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
  "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
  # As in bench/build.sh: after those deletes this ext4 creates files ~10x slower for a while.
  sync; sleep "${PRUNE_SETTLE:-60}"
}

declare -A med
report=()
line() { printf '%s\n' "$1"; report+=("$1"); }
for s in $scenarios; do
  c=$(ctx "$s")
  cold=1; [ "$s" = S2 ] && cold=0; [ "$s" = S6 ] && cold=0
  kinds=()
  [[ " $levels " == *" rootless "* ]] && kinds+=(root rootless)
  [[ " $levels " == *" chroot "* && " $chroot_scenarios " == *" $s "* ]] && kinds+=(chroot buildah)
  [ ${#kinds[@]} -gt 0 ] || continue
  declare -A times=()
  settle_s=${SETTLE:-3}; [ "$s" = S4 ] && settle_s=${SETTLE:-20}
  n=$runs; [[ $s == S[12] ]] && n=${RUNS_SMALL:-11}
  for r in $(seq "$n"); do
    for k in "${kinds[@]}"; do
      if [ "$s" = S2 ]; then run_tool "$k" "$s" "$c" 0 >/dev/null; fi   # warm up the cache
      if [ "$s" = S6 ]; then
        run_tool "$k" "$s" "$c" 0 >/dev/null
        head -c 16777216 /dev/urandom > "$c/data/f7"   # one file changes
      fi
      if [ "$cold" = 1 ]; then
        [ "$k" = buildah ] || fresh_cold "$k"
        SETTLE=$settle_s settle "$c"
      fi
      times[$k]+="$(run_tool "$k" "$s" "$c" "$cold") "
      if [ "$cold" = 1 ] && [ "$k" != buildah ]; then drop_cold "$k"; sync; fi
    done
  done
  for k in "${kinds[@]}"; do
    label=$k; [ "$k" = buildah ] && label=buildah-vfs; [ "$k" = chroot ] && label=cbuild-chroot
    [ "$k" = root ] && label=cbuild-root; [ "$k" = rootless ] && label=cbuild-rootless
    med[$s,$k]=$(printf '%s\n' ${times[$k]} | median)
    printf '%-3s %-15s %-4s median %7.3fs  (runs: %s)\n' "$s" "$label" "$(state "$cold")" "${med[$s,$k]}" "${times[$k]% }"
  done
  [[ " ${kinds[*]} " == *" rootless "* ]] &&
    line "$(printf '%-3s %-4s rootless / root       = %5.2f  (goal <= 1.1)' "$s" "$(state "$cold")" \
      "$(echo "${med[$s,rootless]} / ${med[$s,root]}" | bc -l)")"
  if [[ " ${kinds[*]} " == *" chroot "* ]]; then
    goal="(goal >= 2)"; [[ " S3 S4 S6 " == *" $s "* ]] || goal="(no goal)"
    line "$(printf '%-3s %-4s buildah-vfs / chroot  = %5.2f  %s' "$s" "$(state "$cold")" \
      "$(echo "${med[$s,buildah]} / ${med[$s,chroot]}" | bc -l)" "$goal")"
  fi
  unset times
  prune_all
done
printf 'summary (cores %s, runs %s, S1/S2 runs %s, load average at the end %s):\n' "$(nproc)" "$runs" \
  "${RUNS_SMALL:-11}" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "${report[@]}"
