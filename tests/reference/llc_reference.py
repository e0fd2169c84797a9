#!/usr/bin/env python3
"""Independent reference for edp's MDS reader and compact <-> 13-tile layout.

Reads MDS files (written by edp's MdsWriter in the Rust tests) with xmitgcm,
the package ECCO Dataset Production itself reads MDS through, and writes what
xmitgcm sees so the Rust test can compare element by element.

For each BASE (path without .data/.meta) this writes BASE.ref.bin: the
values as little-endian float64, in xmitgcm's order
  LLC file (--n N):      (nz, 13, N, N) per field, fields in fldList order
  1-D vertical file:     (nz,)
and prints one JSON line per file: {"base", "fields", "shape", "dtype"}.

Two xmitgcm code paths are used for LLC files and must agree:
  * xmitgcm.utils.read_mds(..., llc=True, extra_metadata=get_extra_metadata('llc', N))
    (the path open_mdsdataset(geometry='llc') takes), and
  * xmitgcm.utils.read_3d_llc_data (the older face-by-face reader).

Usage:  llc_reference.py [--n N] BASE [BASE ...]
        llc_reference.py --check     (exit 0 if numpy and xmitgcm import)
Needs:  pip install xmitgcm   (brings numpy, xarray, dask)
"""

import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, help="LLC tile size; omit for 1-D vertical files")
    ap.add_argument("--check", action="store_true", help="only check the imports")
    ap.add_argument("bases", nargs="*")
    args = ap.parse_args()

    try:
        import numpy as np
        import xmitgcm
        from xmitgcm import utils
    except ImportError as e:  # the Rust test skips on exit code 3
        print(f"missing Python module: {e}", file=sys.stderr)
        return 3
    if args.check:
        print(f"xmitgcm {xmitgcm.__version__}, numpy {np.__version__}")
        return 0

    for base in args.bases:
        meta = utils.parse_meta_file(base + ".meta")
        nrecs, shape, _name, dtype, fldlist = utils._get_useful_info_from_meta_file(base + ".meta")
        dtype = dtype.newbyteorder(">")
        if args.n is None:
            data = utils.read_mds(base, use_dask=False, use_mmap=False)
            fields = list(data)
            out = np.concatenate([np.asarray(data[f]).ravel() for f in fields])
        else:
            n = args.n
            nz = shape[1] if len(shape) == 4 else 1
            data = utils.read_mds(
                base,
                use_dask=False,
                use_mmap=False,
                llc=True,
                extra_metadata=utils.get_extra_metadata("llc", n),
            )
            fields = list(data)
            # The same file through the face-by-face reader, record by record.
            old = np.asarray(
                utils.read_3d_llc_data(base + ".data", nz, n, dtype=dtype, nrecs=nrecs)
            ).reshape(nrecs, nz, 13, n, n)
            parts = []
            for r, f in enumerate(fields):
                a = np.asarray(data[f]).reshape(nz, 13, n, n)
                if not np.array_equal(a, old[r], equal_nan=True):
                    print(f"{base}: read_mds and read_3d_llc_data disagree for {f}", file=sys.stderr)
                    return 1
                parts.append(a.ravel())
            out = np.concatenate(parts)
        out.astype("<f8").tofile(base + ".ref.bin")
        print(json.dumps({
            "base": base,
            "fields": fields,
            "shape": [int(s) for s in shape],
            "dtype": str(meta["dataprec"]),
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
