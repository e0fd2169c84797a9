//! `edp references`: a collection's kerchunk reference file, opened by xarray through
//! fsspec's reference filesystem and zarr, equals the collection's granules opened one
//! by one with netCDF4 and concatenated along time; a granule that does not fit its
//! collection fails that collection alone (exit 1, no file) and not the others.

mod common;

use std::path::Path;
use std::process::Command;

use common::{require, Sample};

const CHECK: &str = r#"
import glob, sys
import numpy as np, xarray as xr
ref, pattern, months = sys.argv[1], sys.argv[2], int(sys.argv[3])
virt = xr.open_dataset("reference://", engine="zarr", backend_kwargs={
    "consolidated": False,
    "storage_options": {"fo": ref, "remote_protocol": "file"}})
files = sorted(glob.glob(pattern))
assert len(files) == months, files
each = [xr.open_dataset(f, engine="netcdf4") for f in files]
cat = xr.concat(each, dim="time", data_vars="minimal", coords="minimal",
                compat="override")
assert virt.sizes["time"] == months, virt.sizes
names = list(cat.data_vars) + list(cat.coords)
assert sorted(virt.variables) == sorted(names), (sorted(virt.variables), sorted(names))
for v in names:
    a, b = virt[v], cat[v]
    assert a.dims == b.dims, (v, a.dims, b.dims)
    assert a.dtype == b.dtype, (v, a.dtype, b.dtype)
    x, y = a.values, b.values
    same = np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
    assert same, v
    if "time" in a.dims and a.dtype.kind == "f":
        # The months differ, so a reference to one granule's chunks for all would fail.
        assert not np.array_equal(x[0], x[-1], equal_nan=True), v
for k in ("units", "long_name"):
    for v in cat.data_vars:
        assert virt[v].attrs.get(k) == cat[v].attrs.get(k), (v, k)
assert virt.attrs["title"] == each[0].attrs["title"]
print("checked", len(names), "variables")
"#;

fn references(dest: &Path) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .arg("references")
        .arg(dest)
        .output()
        .expect("edp references");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn check(refs: &Path, file: &str, pattern: &str, months: usize) {
    let o = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .args([file, pattern, &months.to_string()])
        .current_dir(refs)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "{file}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn xarray_reads_a_collection_reference_as_its_granules() {
    require("python3");
    let months = 3;
    let sample = Sample::new(
        12,
        5,
        months,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    );
    let out = sample.out();
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[15, 'native', 'AVG_MON', 'all']\n";
    // `edp run --references` writes them after the run (as `edp references DEST`).
    assert_eq!(sample.run_jobs(jobs, &out, &["--references"]), Some(0));
    let refs = out.join("references");
    for g in ["SEA_SURFACE_HEIGHT", "OCEAN_TEMPERATURE_SALINITY"] {
        let file = format!("{g}_mon_mean_V4r4_native.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(refs.join(&file)).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        let r = &json["refs"];
        // Paths relative to the reference file; one chunk per month for 2D fields.
        if g == "SEA_SURFACE_HEIGHT" {
            for t in 0..months {
                let c = &r[format!("SSH/{t}.0.0.0")];
                let path = c[0].as_str().unwrap();
                assert!(path.starts_with("../V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/"));
                assert!(path.contains(&format!("1992-{:02}", t + 1)), "{path}");
            }
            assert!(r[format!("SSH/{months}.0.0.0")].is_null());
        }
        check(
            &refs,
            &file,
            &format!("../V4r4/native/mon_mean/{g}/*.nc"),
            months,
        );
    }
}

#[test]
fn a_granule_that_does_not_fit_fails_its_collection_only() {
    let sample = Sample::new(
        8,
        5,
        2,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    );
    let out = sample.out();
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[15, 'native', 'AVG_MON', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(0));
    let ssh = out.join("V4r4/native/mon_mean/SEA_SURFACE_HEIGHT");
    let ts = out.join("V4r4/native/mon_mean/OCEAN_TEMPERATURE_SALINITY");
    let stray = std::fs::read_dir(&ts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let intruder = ssh.join("SEA_SURFACE_HEIGHT_mon_mean_1992-12_ECCO_V4r4_native_llc0008.nc");
    std::fs::copy(&stray, &intruder).unwrap();
    let (code, err) = references(&out);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("SEA_SURFACE_HEIGHT") && err.contains("1992-12"),
        "{err}"
    );
    let refs = out.join("references");
    let names: Vec<String> = std::fs::read_dir(&refs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["OCEAN_TEMPERATURE_SALINITY_mon_mean_V4r4_native.json"]
    );
}
