#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh Debian 12 machine for building and testing edp:
# MPI, netCDF-C/HDF5 (serial, and the MPI builds for the parallel-hdf5 build that
# scripts/cargo-par makes), ncdump, libclang for bindgen, and the Python packages
# the tests use as independent references (xmitgcm for the LLC layout).
# Usage: scripts/setup.sh [--no-python]
set -euo pipefail

packages=(
  build-essential pkg-config libclang-dev
  libnetcdf-dev libhdf5-dev netcdf-bin
  libopenmpi-dev openmpi-bin
  libnetcdf-mpi-dev libhdf5-openmpi-dev
  # The cluster tests: node namespaces (scripts/slurm-up.sh --nodes 2), the container
  # image (scripts/container-build.sh) and Charliecloud's ch-run with SquashFS.
  iproute2 mmdebstrap squashfs-tools squashfuse charliecloud-runtime siftool
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

if [ "${1:-}" != "--no-python" ] && command -v python3 >/dev/null 2>&1; then
  if ! python3 -c "import xmitgcm" >/dev/null 2>&1; then
    echo "setup: installing Python test references (xmitgcm)"
    python3 -m pip install --quiet --disable-pip-version-check xmitgcm
  fi
  # netCDF4 + xarray: granules must open in them without a warning (tests/writer.rs).
  if ! python3 -c "import netCDF4, xarray" >/dev/null 2>&1; then
    echo "setup: installing Python test references (netCDF4, xarray)"
    python3 -m pip install --quiet --disable-pip-version-check netCDF4 xarray
  fi
  # fsspec + zarr (+ s3fs for references on S3): xarray opens `edp references` files
  # (tests/references.rs).
  if ! python3 -c "import fsspec, zarr, s3fs" >/dev/null 2>&1; then
    echo "setup: installing Python test references (fsspec, zarr, s3fs)"
    python3 -m pip install --quiet --disable-pip-version-check fsspec zarr s3fs
  fi
  # IOOS compliance-checker: CF-1.8 / ACDD-1.3 scores held as floors (tests/compliance.rs);
  # it ships its CF standard-name table and runs without network.
  if ! command -v cchecker.py >/dev/null 2>&1; then
    echo "setup: installing the IOOS compliance-checker"
    python3 -m pip install --quiet --disable-pip-version-check compliance-checker
  fi
fi
echo "setup: ok"
