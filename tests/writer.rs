//! The direct writer (chunks compressed in Rust on every thread, handed to HDF5 with
//! direct chunk writes, grid coordinates compressed once) against the netCDF-only
//! writer: the same granules, native and lat-lon, 2D and 3D, scalar and vector, give
//! the same `ncdump -hs` (attributes, chunking, filters), the same decompressed values,
//! and open in ncdump, netCDF4-python and xarray with no warning.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{require, Sample};
use edp::granule::{Context, Encoding, FILL_F32};
use edp::grid::Grid;
use edp::metadata::{MetadataSet, Product};
use edp::ncio::{AttrValue, NcReader, WriteMethod};
use edp::run::WriteOptions;
use edp::tasks::Task;

/// Writes `task` with `method` into `dir` (same file name) and returns the path.
fn produce_into(task: &Task, ctx: &Context, method: WriteMethod, dir: &Path) -> PathBuf {
    let mut t = task.clone();
    let name = Path::new(&task.granule).file_name().unwrap().to_owned();
    t.granule = dir.join(name).to_string_lossy().into_owned();
    let options = WriteOptions {
        method,
        quicklook: false,
    };
    edp::run::produce(
        &t,
        ctx,
        options,
        &edp::storage::Storage::new(&Default::default()),
    )
    .unwrap()
    .path
}

/// `ncdump -hs` without what differs between any two runs (creation times, uuid) and
/// the first line (it names the directory-less file, the same here anyway).
fn header(path: &Path) -> String {
    let out = Command::new("ncdump")
        .arg("-hs")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ncdump -hs {path:?} failed");
    assert!(
        out.stderr.is_empty(),
        "ncdump -hs {path:?} printed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            ![
                "date_created",
                "date_issued",
                "date_modified",
                "date_metadata_modified",
                ":uuid",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every variable's values, as bit patterns (NaN-safe equality).
fn all_values(path: &Path) -> Vec<(String, Vec<u64>)> {
    let r = NcReader::open(path).unwrap();
    r.var_names()
        .into_iter()
        .map(|v| {
            let bits = common::value_bits(&r, &v);
            (v, bits)
        })
        .collect()
}

/// Dumps every value with `ncdump`: it must succeed and print nothing on stderr.
fn ncdump_all(path: &Path) {
    let out = Command::new("ncdump").arg(path).output().unwrap();
    assert!(out.status.success(), "ncdump {path:?} failed");
    assert!(
        out.stderr.is_empty(),
        "ncdump {path:?} printed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens the file in netCDF4-python and xarray with every warning an error (and
/// nothing printed on stderr, such as HDF5 diagnostics from C), and prints the sum of
/// `var` over its non-fill values as each sees it.
fn python_sums(path: &Path, var: &str) -> (f64, f64) {
    let script = r#"
import sys, warnings
warnings.simplefilter("error")
import numpy as np, netCDF4, xarray
p, v = sys.argv[1], sys.argv[2]
with netCDF4.Dataset(p) as n:
    for name in n.variables:
        n[name][:]
    a = n[v][:]
    s1 = float(np.ma.sum(a.astype("float64")))
with xarray.open_dataset(p) as ds:
    ds.load()
    s2 = float(np.nansum(ds[v].values.astype("float64")))
print(s1, s2)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .arg(var)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "python (warnings are errors) failed or printed on {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}

#[test]
fn direct_and_netcdf_writers_make_the_same_granules() {
    require("ncdump");
    let sample = Sample::new(
        12,
        50,
        1,
        &[
            "SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT", "UVEL", "VVEL", "WVELMASS",
        ],
    );
    let m = Arc::new(MetadataSet::embedded().unwrap());
    let grid = Grid::open(&sample.grid_dir()).unwrap();
    let factors = common::half_degree_factors(&grid, &sample.out().join("edp_factors"));
    let ctx = Context {
        metadata: Arc::clone(&m),
        grid: Arc::new(grid),
        encoding: Encoding::default(),
        nonfinite: Default::default(),
        factors: Some(factors),
        coords: Default::default(),
    };
    assert_eq!(
        WriteOptions::default().method,
        WriteMethod::Direct,
        "the direct writer is the default"
    );
    let direct_dir = sample.dir.path().join("direct");
    let netcdf_dir = sample.dir.path().join("netcdf");
    // Two native granules in a row: the second reuses the compressed coordinates.
    for (product, grouping, var) in [
        (Product::Native, "SEA_SURFACE_HEIGHT", "SSH"),
        (Product::Latlon, "SEA_SURFACE_HEIGHT", "SSH"),
        (Product::Native, "OCEAN_TEMPERATURE_SALINITY", "THETA"),
        (Product::Latlon, "OCEAN_TEMPERATURE_SALINITY", "SALT"),
        (Product::Latlon, "OCEAN_VELOCITY", "EVEL"),
        (Product::Native, "OCEAN_VELOCITY", "UVEL"),
    ] {
        let t = sample.product_tasks(product, grouping).remove(0);
        let d = produce_into(&t, &ctx, WriteMethod::Direct, &direct_dir);
        let n = produce_into(&t, &ctx, WriteMethod::NetCdf, &netcdf_dir);
        let what = format!("{grouping} {product:?}");

        let (hd, hn) = (header(&d), header(&n));
        assert_eq!(hd, hn, "{what}: ncdump -hs differs");
        assert!(hd.contains("_DeflateLevel = 5"), "{what}: {hd}");
        assert!(hd.contains("_Shuffle = \"true\""), "{what}");
        assert!(hd.contains("_IsNetcdf4 = 1"), "{what}");
        assert!(hd.contains(&format!("{var}:_ChunkSizes = 1, ")), "{what}");
        assert!(
            !hd.contains("valid_min = NaN"),
            "{what}: a range was not set"
        );

        let (vd, vn) = (all_values(&d), all_values(&n));
        assert_eq!(
            vd.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            vn.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for ((name, a), (_, b)) in vd.iter().zip(&vn) {
            assert!(a == b, "{what}: values of {name} differ");
        }
        // Different compressors, so the direct writer really wrote its own chunks.
        let size = |p: &Path| std::fs::metadata(p).unwrap().len();
        assert_ne!(
            size(&d),
            size(&n),
            "{what}: same size, was the direct path used?"
        );

        // An independent reader agrees on the values.
        let values = NcReader::open(&d).unwrap().read_f32(var).unwrap();
        let ours: f64 = values
            .iter()
            .filter(|&&x| x != FILL_F32)
            .map(|&x| f64::from(x))
            .sum();
        // valid_min/valid_max (found while streaming) are the extremes of what was written.
        let r = NcReader::open(&d).unwrap();
        let attr = |a: &str| match r.var_attrs(var).unwrap().into_iter().find(|(n, _)| n == a) {
            Some((_, AttrValue::F32(x))) => x,
            other => panic!("{what}: {var}:{a} is {other:?}"),
        };
        let wet = values.iter().copied().filter(|&x| x != FILL_F32);
        let lo = wet.clone().fold(f32::INFINITY, f32::min);
        let hi = wet.fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(
            (attr("valid_min"), attr("valid_max")),
            (lo, hi),
            "{what}: {var} range"
        );
        ncdump_all(&d);
        let (s_nc, s_xr) = python_sums(&d, var);
        let tol = 1e-9 * ours.abs().max(1.0);
        assert!(
            (s_nc - ours).abs() <= tol,
            "{what}: netCDF4 sum {s_nc} vs {ours}"
        );
        assert!(
            (s_xr - ours).abs() <= tol,
            "{what}: xarray sum {s_xr} vs {ours}"
        );
    }
}
