#!/usr/bin/env bash
# Checks singularity/edp.def where no apptainer/singularity can be installed (Debian 12
# packages neither), in two depths:
#
#   singularity/check-def.sh [DEF]
#       Parse check: the header of every stage (Bootstrap, OSVersion, MirrorURL,
#       Stage), only known sections, `%files from` naming an earlier stage, %files
#       sources present in the checkout, and `sh -n` of every script section. Seconds.
#
#   singularity/check-def.sh --chroot WORKDIR [--host-rust] [DEF]
#       Does what `apptainer build` would, without apptainer: debootstrap the stages'
#       Debian from the MirrorURL, copy %files in, run each stage's %post in a chroot,
#       copy `%files from build` into the final stage, then run %runscript with
#       --version and %test there with %environment sourced. Needs root and the
#       Debian mirror; minutes (a release build of edp inside).
#       --host-rust binds this machine's rustup toolchain and cargo home into the build
#       chroot, so %post finds cargo and skips its rustup download (for machines that
#       reach crates.io but not rustup's server).
#
# Apptainer runs %post and %test with /bin/sh; so does this script.
set -euo pipefail

cd "$(dirname "$0")/.."
mode=parse
work=
host_rust=0
def=singularity/edp.def
while (($#)); do
  case "$1" in
  --chroot) mode=chroot; work=$2; shift ;;
  --host-rust) host_rust=1 ;;
  *) def=$1 ;;
  esac
  shift
done

fail() { echo "check-def: $def: $*" >&2; exit 1; }
say() { echo "check-def: $*" >&2; }
[ -f "$def" ] || fail "not found"

# --- Parse: split the file into stages and sections -------------------------------
# Section bodies go to $tmp/<stage index>.<section>; headers to $tmp/<i>.header.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v out="$tmp" '
  /^Bootstrap:/ { stage++; section = "header" }
  /^%/ {
    if (!stage) { print "section before any Bootstrap header: " $0 > "/dev/stderr"; exit 3 }
    section = substr($1, 2)
    if ($2 == "from") { print $3 > (out "/" stage ".files-from") }
    print section >> (out "/" stage ".sections")
    next
  }
  stage && section == "header" { if ($0 !~ /^[[:space:]]*(#|$)/) print >> (out "/" stage ".header"); next }
  stage { print >> (out "/" stage "." section) }
  END { print stage + 0 > (out "/stages") }
' "$def" || fail "cannot split into stages"

stages=$(cat "$tmp/stages")
((stages >= 1)) || fail "no Bootstrap header"
known=" files post environment runscript test labels help setup startscript apprun apphelp appenv appinstall appfiles applabels apptest arguments pre "
declare -A stage_index
for i in $(seq "$stages"); do
  header="$tmp/$i.header"
  key() { sed -n "s/^$1:[[:space:]]*//p" "$header" | head -n1; }
  bootstrap=$(key Bootstrap)
  [ "$bootstrap" = debootstrap ] || fail "stage $i: Bootstrap is '$bootstrap'; only debootstrap needs no registry here"
  [ -n "$(key OSVersion)" ] || fail "stage $i: no OSVersion"
  [ -n "$(key MirrorURL)" ] || fail "stage $i: no MirrorURL"
  name=$(key Stage)
  [ -n "$name" ] || { ((stages == 1)) || fail "stage $i: several stages but no Stage: name"; name=final; }
  [ -z "${stage_index[$name]:-}" ] || fail "stage name $name used twice"
  stage_index[$name]=$i
  while read -r s; do
    [[ "$known" == *" $s "* ]] || fail "stage $name: unknown section %$s"
  done <"$tmp/$i.sections"
  if [ -f "$tmp/$i.files-from" ]; then
    from=$(cat "$tmp/$i.files-from")
    if [ -z "${stage_index[$from]:-}" ] || ((stage_index[$from] >= i)); then
      fail "stage $name: %files from '$from', which is not an earlier stage"
    fi
  elif [ -f "$tmp/$i.files" ]; then
    # %files sources are relative to where `apptainer build` runs: the checkout.
    while read -r src _dst; do
      [ -z "$src" ] || [[ "$src" == \#* ]] || [ -e "$src" ] || fail "stage $name: %files source $src does not exist"
    done <"$tmp/$i.files"
  fi
  for s in post environment runscript test setup startscript; do
    [ -f "$tmp/$i.$s" ] || continue
    sh -n "$tmp/$i.$s" || fail "stage $name: %$s is not valid sh"
  done
done
final=$stages
for s in runscript test help; do
  [ -f "$tmp/$final.$s" ] || fail "the final stage has no %$s"
done
say "parse ok: $stages stage(s) ($(printf '%s ' "${!stage_index[@]}")), sections of the final stage: $(paste -sd' ' "$tmp/$final.sections")"
[ "$mode" = chroot ] || exit 0

# --- Chroot: run the stages as apptainer build would ---------------------------------
[ "$(id -u)" -eq 0 ] || fail "--chroot needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || fail "--chroot needs debootstrap (apt-get install debootstrap)"
mkdir -p "$work"
work=$(cd "$work" && pwd)
mounted=()
cleanup() {
  local k
  for ((k = ${#mounted[@]} - 1; k >= 0; k--)); do umount -l "${mounted[$k]}" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
bind() { # bind SRC DST (inside a root), remembered for the unmount at exit
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounted+=("$2")
}
# Never delete through a mount: a stage root with /dev or the cargo home still bound
# (a killed earlier check) would take the host's files with it.
safe_rm() {
  local path=$1 mp
  while read -r _ mp _; do
    case "$mp" in "$path" | "$path"/*) umount -l "$mp" 2>/dev/null || fail "cannot unmount $mp; not deleting $path" ;; esac
  done </proc/self/mounts
  if grep -q " $path/" /proc/self/mounts; then fail "mounts remain under $path; not deleting it"; fi
  rm -rf "$path"
}
enter() { # enter ROOT: the mounts a build container has
  local root=$1
  bind /proc "$root/proc"
  bind /sys "$root/sys"
  bind /dev "$root/dev"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
}

for i in $(seq "$stages"); do
  header="$tmp/$i.header"
  key() { sed -n "s/^$1:[[:space:]]*//p" "$header" | head -n1; }
  name=$(key Stage)
  name=${name:-final}
  os=$(key OSVersion)
  mirror=$(key MirrorURL)
  # One debootstrap per (release, mirror), reused by the stages and by later checks.
  base="$work/base-$os"
  if [ ! -f "$base/.complete" ]; then
    say "debootstrap $os from $mirror into $base"
    safe_rm "$base"
    debootstrap --variant=minbase "$os" "$base" "$mirror" >"$work/debootstrap-$os.log" 2>&1 \
      || { tail -n 20 "$work/debootstrap-$os.log" >&2; fail "debootstrap failed"; }
    touch "$base/.complete"
  fi
  root="$work/stage-$name"
  safe_rm "$root"
  cp -a "$base" "$root"
  enter "$root"
  if [ -f "$tmp/$i.files" ]; then
    from_root=
    [ -f "$tmp/$i.files-from" ] && from_root="$work/stage-$(cat "$tmp/$i.files-from")"
    while read -r src dst; do
      [ -z "$src" ] || [[ "$src" == \#* ]] && continue
      dst=${dst:-$src}
      mkdir -p "$root$(dirname "$dst")"
      cp -a "${from_root}$src" "$root$dst"
      say "stage $name: %files ${from_root:+from }$src -> $dst"
    done <"$tmp/$i.files"
  fi
  if ((host_rust)) && [ "$name" != final ] && [ -d "$HOME/.rustup" ]; then
    bind "$HOME/.rustup" "$root/root/.rustup"
    bind "$HOME/.cargo" "$root/root/.cargo"
    say "stage $name: bound this machine's rustup toolchain and cargo home"
  fi
  if [ -f "$tmp/$i.post" ]; then
    say "stage $name: running %post"
    start=$SECONDS
    cp "$tmp/$i.post" "$root/.edp-post"
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      /bin/sh -e /.edp-post </dev/null >"$work/post-$name.log" 2>&1 \
      || { tail -n 40 "$work/post-$name.log" >&2; fail "stage $name: %post failed (log: $work/post-$name.log)"; }
    say "stage $name: %post ok in $((SECONDS - start)) s"
  fi
done

root="$work/stage-final"
: >"$root/.edp-environment"
if [ -f "$tmp/$final.environment" ]; then cp "$tmp/$final.environment" "$root/.edp-environment"; fi
cp "$tmp/$final.runscript" "$root/.edp-runscript"
cp "$tmp/$final.test" "$root/.edp-test"
run_in_final() {
  # shellcheck disable=SC2016 # $1 and $script expand in the chroot's shell
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    /bin/sh -c '. /.edp-environment; script=$1; shift; . "$script"' sh "$@"
}
say "final: %runscript --version: $(run_in_final /.edp-runscript --version)"
say "final: running %test"
run_in_final /.edp-test >"$work/test.log" 2>&1 || { cat "$work/test.log" >&2; fail "%test failed"; }
tail -n 1 "$work/test.log" >&2
du -shx "$root" | awk '{ print "check-def: final stage tree: " $1 }' >&2
say "chroot ok"
