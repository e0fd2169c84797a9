#!/usr/bin/env bash
# Builds the edp container image from Debian's packages, with no registry of images:
#
#   scripts/container-build.sh DIR      -> DIR/edp.sqfs (SquashFS), DIR/edp.rootfs/ kept
#                                          only with --keep-rootfs
#   scripts/container-build.sh --sif DIR   also DIR/edp.sif: the same SquashFS as the
#                                          primary system partition of a SIF (Debian's
#                                          siftool), the layout `apptainer build` writes;
#                                          not run here (Debian has no Apptainer)
#
# 1. mmdebstrap extracts the runtime libraries edp links (netCDF, HDF5, Open MPI with
#    PMIx, and what they pull in) from the same Debian release as this machine into a
#    root file system; no shell, no apt, no docs: only what `edp` runs with.
# 2. The release edp binary ($CARGO_TARGET_DIR or target, release/edp; built if missing) goes in as
#    /usr/local/bin/edp, without its debug info.
# 3. The mount points Charliecloud's ch-run binds onto (it cannot make them in a
#    read-only image) are made: /etc/{passwd,group,hosts,resolv.conf}, /dev /proc /sys
#    /tmp /home /mnt /var/tmp /var/spool, and the roots of sites' shared file systems
#    (EDP_IMAGE_MOUNTS, default /work /scratch /data /project /lustre /gpfs /nobackup
#    /shared /srv): slurm/edp.sbatch binds the host's directory of the same name there.
# 4. mksquashfs packs it (zstd level 9: level 19 saves 4 MB of 43 and takes 30x as long)
#    as DIR/edp.sqfs, and the size is printed.
#
# Run it:   ch-run DIR/edp.sqfs -- edp --version      (unprivileged; needs squashfuse)
#           EDP_IMAGE=DIR/edp.sqfs sbatch slurm/edp.sbatch ...
#
# Needs root (mmdebstrap's root mode) and the Debian mirror (EDP_IMAGE_MIRROR, default
# http://deb.debian.org); installs mmdebstrap and squashfs-tools if missing.
# Exit: 0 built; 1 failure; 2 usage; 77 cannot build here (not root, no apt).
set -euo pipefail

say() { echo "container-build: $*" >&2; }
cannot() { say "cannot build the image here: $*"; exit 77; }

keep=0
sif=0
out=
while (($#)); do
  case "$1" in
  --keep-rootfs) keep=1 ;;
  --sif) sif=1 ;;
  -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
  -*) say "unknown option $1"; exit 2 ;;
  *) [ -z "$out" ] || { say "one DIR only"; exit 2; }; out=$1 ;;
  esac
  shift
done
[ -n "$out" ] || { say "usage: scripts/container-build.sh [--keep-rootfs] DIR"; exit 2; }
[ "$(id -u)" -eq 0 ] || cannot "not root (mmdebstrap's root mode)"

cd "$(dirname "$0")/.."
repo=$PWD
start=$(date +%s)

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v mksquashfs >/dev/null || need+=(squashfs-tools)
((sif == 0)) || command -v siftool >/dev/null || need+=(siftool)
if ((${#need[@]})); then
  command -v apt-get >/dev/null || cannot "apt-get not found to install ${need[*]}"
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bin=${CARGO_TARGET_DIR:-$repo/target}/release/edp
if [ ! -x "$bin" ]; then
  say "building the release edp"
  cargo build --release --bin edp
fi

# The runtime packages: the ones that provide the libraries edp links, by name, so the
# image follows the binary (libmpi -> libopenmpi3, which brings libpmix2 and hwloc).
mapfile -t pkgs < <(ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
  dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u)
# PMIx and Open MPI's plug-ins are loaded at run time, not linked.
pkgs+=(libopenmpi3 libpmix2 openmpi-common)
include=$(printf '%s\n' "${pkgs[@]}" | grep -v '^libc6$' | sort -u | paste -sd,)
# Same release as this machine, so the libraries are the ones edp was linked against.
. /etc/os-release
suite=$VERSION_CODENAME
mirror=${EDP_IMAGE_MIRROR:-http://deb.debian.org}

mkdir -p "$out"
root=$out/edp.rootfs
rm -rf "$root"
say "mmdebstrap $suite: libc6,$include"
# extract: unpack the packages and their dependencies, run no maintainer script (no
# shell or dpkg needed in the image).
mmdebstrap --quiet --mode=root --variant=extract --include="libc6,$include" "$suite" "$root" \
  "deb $mirror/debian $suite main" \
  "deb $mirror/debian $suite-updates main" \
  "deb $mirror/debian-security $suite-security main"

# What edp never reads at run time.
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug,bash-completion} "$root"/var/cache/* \
  "$root"/var/lib/apt/lists/* "$root"/usr/lib/x86_64-linux-gnu/gconv
install -D -m 0755 "$bin" "$root/usr/local/bin/edp"
strip --strip-debug "$root/usr/local/bin/edp"
# The loader cache (no maintainer script ran ldconfig), for Open MPI's lib directory.
ldconfig -r "$root"

# Mount points for ch-run (it binds these; a SquashFS image cannot grow them).
mkdir -p "$root"/{dev,proc,sys,tmp,home,mnt,root,run,var/tmp,var/spool,etc}
chmod 1777 "$root/tmp" "$root/var/tmp"
for f in passwd group hosts resolv.conf nsswitch.conf; do [ -e "$root/etc/$f" ] || : >"$root/etc/$f"; done
# shellcheck disable=SC2086 # a list of directories
for d in ${EDP_IMAGE_MOUNTS:-/work /scratch /data /project /lustre /gpfs /nobackup /shared /srv}; do
  mkdir -p "$root$d"
done
# And the roots of where this build lives (the checkout, its target and the image's
# directory), so that an image built from a checkout anywhere (CI checks out under
# /check) can bind that checkout's job directories without EDP_IMAGE_MOUNTS.
for p in "$repo" "${CARGO_TARGET_DIR:-$repo/target}" "$out"; do
  case "$p" in /?*) rest=${p#/} && mkdir -p "$root/${rest%%/*}" ;; esac
done

# The image must run: edp and every library it needs, inside the root file system.
if missing=$(chroot "$root" /usr/local/bin/edp --version 2>&1); then
  say "in the image: $missing"
else
  say "edp does not run inside the root file system: $missing"
  exit 1
fi

rm -f "$out/edp.sqfs"
mksquashfs "$root" "$out/edp.sqfs" -comp zstd -Xcompression-level 9 -noappend -quiet -no-progress -all-root >/dev/null
((keep)) || rm -rf "$root"
size=$(stat -c %s "$out/edp.sqfs")
echo "$out/edp.sqfs: $((size / 1024 / 1024)) MiB ($size bytes), built in $(($(date +%s) - start)) s"
if ((sif)); then
  rm -f "$out/edp.sif"
  siftool new "$out/edp.sif"
  siftool add "$out/edp.sif" "$out/edp.sqfs" --datatype 4 --parttype 2 --partfs 1 --partarch 2 --groupid 1
  echo "$out/edp.sif: the same SquashFS as a SIF"
fi
