//! `edp references`: a collection's kerchunk reference file, opened by xarray through
//! fsspec's reference filesystem and zarr from an unrelated directory, equals the
//! collection's granules opened one by one with netCDF4 and concatenated along time,
//! and its attributes describe the collection (time coverage of all granules); the same
//! from an S3 destination (the moto server), with the references written there, and
//! with `--url-prefix` pointing local references at where the granules are published.
//! A granule that does not fit its collection fails that collection alone (exit 1, no
//! file) and not the others.

mod common;
mod s3_support;

use std::path::Path;
use std::process::Command;

use common::{require, Sample};

const CHECK: &str = r#"
import glob, json, sys
import numpy as np, xarray as xr
ref, pattern, months, opts = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
virt = xr.open_dataset("reference://", engine="zarr", backend_kwargs={
    "consolidated": False, "storage_options": dict(fo=ref, **opts)})
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
# The collection's attributes: its time coverage spans every granule, the valid range
# covers all of them, nothing names one granule.
assert virt.attrs["title"] == each[0].attrs["title"]
assert virt.attrs["time_coverage_start"] == each[0].attrs["time_coverage_start"]
assert virt.attrs["time_coverage_end"] == each[-1].attrs["time_coverage_end"]
assert "uuid" not in virt.attrs and "product_name" not in virt.attrs
for v in cat.data_vars:
    if "valid_min" in cat[v].attrs:
        assert virt[v].attrs["valid_min"] == min(e[v].attrs["valid_min"] for e in each), v
        assert virt[v].attrs["valid_max"] == max(e[v].attrs["valid_max"] for e in each), v
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

/// Opens reference `fo` with xarray from a fresh directory of its own and compares it
/// with the granules matching `pattern` (absolute); `opts` are fsspec's reference
/// filesystem options besides `fo`.
fn check(fo: &str, pattern: &str, months: usize, opts: &serde_json::Value) {
    let elsewhere = tempfile::tempdir().unwrap();
    let o = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .args([fo, pattern, &months.to_string(), &opts.to_string()])
        .current_dir(elsewhere.path())
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "{fo}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

const GROUPINGS: [&str; 2] = ["SEA_SURFACE_HEIGHT", "OCEAN_TEMPERATURE_SALINITY"];

fn sample(months: usize) -> Sample {
    Sample::new(
        12,
        5,
        months,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    )
}

const JOBS: &str = "[0, 'native', 'AVG_MON', 'all']\n[15, 'native', 'AVG_MON', 'all']\n";

#[test]
fn xarray_reads_a_collection_reference_as_its_granules_from_anywhere() {
    require("python3");
    let months = 3;
    let sample = sample(months);
    let out = sample.out();
    // `edp run --references` writes them after the run (as `edp references DEST`).
    assert_eq!(sample.run_jobs(JOBS, &out, &["--references"]), Some(0));
    let refs = out.join("references");
    let abs_out = std::fs::canonicalize(&out).unwrap();
    let names: Vec<String> = std::fs::read_dir(&refs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), GROUPINGS.len(), "{names:?}");
    for g in GROUPINGS {
        let file = format!("{g}_mon_mean_V4r4_native.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(refs.join(&file)).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        let r = &json["refs"];
        // Absolute file:// URLs; one chunk per month for 2D fields.
        if g == "SEA_SURFACE_HEIGHT" {
            for t in 0..months {
                let c = &r[format!("SSH/{t}.0.0.0")];
                let path = c[0].as_str().unwrap();
                let want = format!(
                    "file://{}/V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/",
                    abs_out.display()
                );
                assert!(path.starts_with(&want), "{path}");
                assert!(path.contains(&format!("1992-{:02}", t + 1)), "{path}");
            }
            assert!(r[format!("SSH/{months}.0.0.0")].is_null());
        }
        check(
            &refs.join(&file).to_string_lossy(),
            &format!("{}/V4r4/native/mon_mean/{g}/*.nc", abs_out.display()),
            months,
            &serde_json::json!({"remote_protocol": "file"}),
        );
    }
}

#[test]
fn references_of_an_s3_destination_open_from_s3() {
    require("python3");
    let Some(ep) = s3_support::server("references_of_an_s3_destination") else {
        return;
    };
    let months = 2;
    let sample = sample(months);
    let out = sample.out();
    assert_eq!(sample.run_jobs(JOBS, &out, &[]), Some(0));
    let abs_out = std::fs::canonicalize(&out).unwrap();
    let b = s3_support::bucket(&ep, "edp-refs");
    let dest = format!("s3://{b}/out");
    let scratch = tempfile::tempdir().unwrap();
    // References of the local tree pointing at where it will be published.
    let published = abs_out.join("published-refs");
    let o = s3_support::edp(&ep, scratch.path())
        .arg("references")
        .arg(&out)
        .arg("-o")
        .arg(&published)
        .args(["--url-prefix", &dest])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s3_support::upload_tree(&out.join("V4r4"), &b, "out/V4r4");
    // References of the S3 tree itself, written there.
    let o = s3_support::edp(&ep, scratch.path())
        .args(["references", &dest])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s3fs = serde_json::json!({
        "key": "testing", "secret": "testing",
        "client_kwargs": {"endpoint_url": ep, "region_name": "us-east-1"},
    });
    let mut s3fs_async = s3fs.clone();
    s3fs_async["asynchronous"] = serde_json::json!(true);
    for g in GROUPINGS {
        let file = format!("{g}_mon_mean_V4r4_native.json");
        let pattern = format!("{}/V4r4/native/mon_mean/{g}/*.nc", abs_out.display());
        let on_s3 = format!("{dest}/references/{file}");
        let refs: serde_json::Value = serde_json::from_slice(
            &s3_support::s3()
                .get_bytes(&edp::storage::S3Url {
                    bucket: b.clone(),
                    key: format!("out/references/{file}"),
                })
                .unwrap(),
        )
        .unwrap();
        let first = refs["refs"]
            .as_object()
            .unwrap()
            .values()
            .find_map(|v| v.as_array().and_then(|a| a[0].as_str()))
            .unwrap();
        assert!(
            first.starts_with(&format!("{dest}/V4r4/native/mon_mean/{g}/")),
            "{first}"
        );
        check(
            &on_s3,
            &pattern,
            months,
            // zarr reads the chunks asynchronously: the remote (granule) filesystem must
            // be too; the target (the reference file) is read once, synchronously.
            &serde_json::json!({
                "target_protocol": "s3", "target_options": s3fs,
                "remote_protocol": "s3", "remote_options": s3fs_async,
            }),
        );
        // The local references with --url-prefix name the published objects.
        check(
            &published.join(&file).to_string_lossy(),
            &pattern,
            months,
            &serde_json::json!({"remote_protocol": "s3", "remote_options": s3fs_async}),
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
    assert_eq!(sample.run_jobs(JOBS, &out, &[]), Some(0));
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
