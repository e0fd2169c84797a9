//! The four 1D collections (`edp::oned`) from synthetic time-series inputs: xarray opens
//! each granule with a decoded time axis over the whole record, and its name, DOI,
//! title, variables and attributes are those the V4r4 metadata prescribes, checked
//! against the metadata files and the PO.DAAC table read independently in Python; the
//! records ECCO's script blanks are fill values and the GMSL terms are anomalies.

mod common;

use std::process::Command;

use common::require;

const CHECK: &str = r#"
import csv, json, sys
import numpy as np, xarray as xr
meta, inputs, granule, grouping, period = sys.argv[1:6]
grouping = int(grouping)
groupings = json.load(open(f"{meta}/ECCOv4r4_groupings_for_1D_datasets.json"))
g = groupings[grouping]
name = f"{g['filename']}_{period}_ECCO_V4r4_1D.nc"
assert granule.endswith("/" + name), (granule, name)
rows = {r["DATASET.FILENAME"]: r for r in csv.DictReader(open(f"{meta}/PODAAC_datasets-revised_20210226.5.csv"))}
row = rows[name]
varmeta = {r["name"]: r for r in json.load(open(f"{meta}/ECCOv4r4_variable_metadata_for_1D_datasets.json"))}
ds = xr.open_dataset(granule)
assert np.issubdtype(ds.time.dtype, np.datetime64), ds.time.dtype
src_name = {"snap": {0: "Pa_global.nc", 2: "SBO_global.nc"}, "day_mean": {1: "GMSL_day.nc"},
            "mon_mean": {1: "GMSL.nc"}}[period][grouping]
src = xr.open_dataset(f"{inputs}/{src_name}")
# The whole record, its times decoded to the same instants (whole hours).
assert ds.sizes["time"] == src.sizes["time"], (ds.sizes, src.sizes)
assert (ds.time.values == src.time.values.astype("datetime64[h]")).all()
fields = [f.strip() for f in g["fields"].split(",")]
assert sorted(ds.data_vars) == sorted(fields + (["time_bnds"] if period != "snap" else [])), list(ds.data_vars)
for f in fields:
    v = ds[f]
    assert v.dtype == np.float32, (f, v.dtype)
    assert v.attrs["long_name"] == varmeta[f]["long_name"], f
    assert v.attrs["units"] == varmeta[f]["units"], f
    if varmeta[f].get("comments_1"):
        assert varmeta[f]["comments_1"] in v.attrs["comment"], f
    x = v.values
    blanked = {0: 2, 1: 1 if period == "day_mean" else 0,
               2: 1 if any(s in f for s in ("com", "amp", "mass")) else 0}[grouping]
    assert np.isnan(x[:blanked]).all() and np.isfinite(x[blanked:]).all(), (f, x[:3])
    want = src[f].values.astype(np.float64)
    want[:blanked] = np.nan
    if grouping == 1:
        want = want - np.nanmean(want)
    assert np.allclose(x[blanked:], want[blanked:], rtol=1e-6, atol=1e-7), f
    assert v.attrs["valid_min"] == np.float32(np.nanmin(x)) and v.attrs["valid_max"] == np.float32(np.nanmax(x)), f
if period != "snap":
    b = ds.time_bnds.values
    assert (b[:, 0] <= ds.time.values).all() and (ds.time.values <= b[:, 1]).all()
else:
    assert "bounds" not in ds.time.attrs
a = ds.attrs
assert a["id"] == row["DATASET.PERSISTENT_ID"].replace("PODAAC-", "10.5067/"), a["id"]
assert a["identifier_product_doi"] == a["id"]
assert a["title"] == row["DATASET.LONG_NAME"], a["title"]
assert a["metadata_link"].endswith("ShortName=" + row["DATASET.SHORT_NAME"])
assert a["product_name"] == name
assert a["time_coverage_start"] == "1992-01-01T12:00:00" and a["time_coverage_end"] == "2017-12-31T12:00:00"
assert a["time_coverage_resolution"] == {"snap": "PT0S", "day_mean": "P1D", "mon_mean": "P1M"}[period]
assert a["comment"].startswith(json.load(open(f"{meta}/ECCOv4r4_global_metadata_for_1D_datasets.json"))[0]["value"])
if "comment" in g:
    assert a["comment"].endswith(g["comment"])
keys = list(a)
assert keys == sorted(keys, key=str.casefold), keys
print(name, row["DATASET.SHORT_NAME"], a["id"])
"#;

#[test]
fn the_four_1d_granules_follow_the_metadata() {
    require("python3");
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("1D");
    edp::synth::oned::write_inputs(&inputs, 4, 3).unwrap();
    let out = dir.path().join("out");
    let meta = concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/V4r4");
    let mut short_names = Vec::new();
    for d in edp::oned::DATASETS {
        let path = edp::oned::write(&d, &inputs, &out).unwrap();
        let period = match d.freq {
            edp::time::Frequency::AvgDay => "day_mean",
            edp::time::Frequency::AvgMon => "mon_mean",
            _ => "snap",
        };
        let o = Command::new("python3")
            .arg("-c")
            .arg(CHECK)
            .arg(meta)
            .arg(&inputs)
            .arg(&path)
            .args([&d.grouping.to_string(), period])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        short_names.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    // The four PO.DAAC collections of the issue, by short name and DOI.
    assert_eq!(
        short_names,
        [
            "GLOBAL_MEAN_ATM_SURFACE_PRES_snap_ECCO_V4r4_1D.nc ECCO_L4_GMAP_TIME_SERIES_SNAPSHOT_V4R4 10.5067/ECTSS-MAP44",
            "GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc ECCO_L4_GMSL_TIME_SERIES_DAILY_V4R4 10.5067/ECTSD-MSL44",
            "GLOBAL_MEAN_SEA_LEVEL_mon_mean_ECCO_V4r4_1D.nc ECCO_L4_GMSL_TIME_SERIES_MONTHLY_V4R4 10.5067/ECTSM-MSL44",
            "SBO_CORE_PRODUCTS_snap_ECCO_V4r4_1D.nc ECCO_L4_SBO_CORE_TIME_SERIES_SNAPSHOT_V4R4 10.5067/ECTSS-SBO44",
        ]
    );
}

#[test]
fn an_input_without_time_units_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Pa_global.nc");
    let mut time =
        edp::ncio::VarDef::new("time", &["time"], edp::ncio::VarData::F64(vec![0.0, 1.0]));
    time.attrs.clear();
    let def = edp::ncio::DatasetDef {
        dims: vec![("time".into(), 2)],
        vars: vec![
            time,
            edp::ncio::VarDef::new(
                "Pa_global",
                &["time"],
                edp::ncio::VarData::F64(vec![1.0, 2.0]),
            ),
        ],
        global_attrs: vec![],
    };
    edp::ncio::write_atomic(def, &path).unwrap();
    let err =
        edp::oned::write(&edp::oned::DATASETS[0], dir.path(), &dir.path().join("out")).unwrap_err();
    let text = edp::error::chain(&err);
    assert!(
        text.contains("Pa_global.nc") && text.contains("units"),
        "{text}"
    );
    assert!(!dir
        .path()
        .join("out")
        .join(edp::oned::DATASETS[0].relative_path().unwrap())
        .exists());
}
