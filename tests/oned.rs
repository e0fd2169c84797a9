//! The four 1D collections (`edp::oned`) from synthetic time-series inputs: xarray opens
//! each granule with a decoded time axis over the whole record, and its name, DOI,
//! title, variables and attributes are those the V4r4 metadata prescribes, checked
//! against the metadata files and the PO.DAAC table read independently in Python; the
//! records ECCO's script blanks are fill values and the GMSL terms are anomalies.
//!
//! Their jobs (`'1D'` lines) through `edp tasks` into an EDP-schema task list, that list
//! as EDP's own writer (Python `json.dump`, relative paths) would hold it through
//! `edp run --tasks`, and the granules counted by `edp status` and checked by
//! `edp verify` (a corrupted one fails it) as every other granule.

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

/// Runs CHECK on a 1D granule made from `inputs`; returns its line of output.
fn check_granule(inputs: &std::path::Path, path: &std::path::Path, d: &edp::oned::OneD) -> String {
    let meta = concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/V4r4");
    let period = match d.freq {
        edp::time::Frequency::AvgDay => "day_mean",
        edp::time::Frequency::AvgMon => "mon_mean",
        _ => "snap",
    };
    let o = Command::new("python3")
        .arg("-c")
        .arg(CHECK)
        .arg(meta)
        .arg(inputs)
        .arg(path)
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
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn the_four_1d_granules_follow_the_metadata() {
    require("python3");
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("1D");
    edp::synth::oned::write_inputs(&inputs, 4, 3).unwrap();
    let out = dir.path().join("out");
    let mut short_names = Vec::new();
    for d in edp::oned::DATASETS {
        let path = edp::granule::oned::write(&d, &inputs, &out).unwrap();
        short_names.push(check_granule(&inputs, &path, &d));
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
        edp::granule::oned::write(&edp::oned::DATASETS[0], dir.path(), &dir.path().join("out"))
            .unwrap_err();
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

/// The task list as EDP's writer would hold it: `json.dump(indent=4)` of the tasks with
/// every location relative to the list's directory; checks the EDP schema on the way.
const EDP_LIST: &str = r#"
import json, os, sys
src, dst, meta = sys.argv[1:4]
tasks = json.load(open(src))
groupings = json.load(open(f"{meta}/ECCOv4r4_groupings_for_1D_datasets.json"))
keys = ["granule", "variables", "ecco_cfg_loc", "ecco_grid_loc", "ecco_mapping_factors_loc",
        "ecco_metadata_loc", "dynamic_metadata"]
dm_keys = ["name", "dimension", "time_coverage_start", "time_coverage_end", "time_coverage_center",
           "time_long_name", "time_coverage_duration", "time_coverage_resolution", "comment", "summary"]
base = os.path.dirname(os.path.abspath(dst))
rel = lambda p: os.path.relpath(p, base) if p else p
for t in tasks:
    assert list(t) == keys, list(t)
    assert [k for k in dm_keys if k in t["dynamic_metadata"]] == list(t["dynamic_metadata"]), t["dynamic_metadata"]
    g = next(g for g in groupings if "/" + g["filename"] + "/" in t["granule"])
    assert t["dynamic_metadata"]["name"] == g["name"] and t["dynamic_metadata"]["dimension"] == "1D"
    assert list(t["variables"]) == [f.strip() for f in g["fields"].split(",")], list(t["variables"])
    for pairs in t["variables"].values():
        assert len(pairs) == 1 and len(pairs[0]) == 2 and pairs[0][0].endswith(".nc") and pairs[0][1] == ""
        pairs[0][0] = rel(pairs[0][0])
    t["granule"] = rel(t["granule"])
    t["ecco_grid_loc"] = rel(t["ecco_grid_loc"])
json.dump(tasks, open(dst, "w"), indent=4)
print(len(tasks))
"#;

fn edp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edp"));
    c.env("EDP_MPI", "off");
    c
}

#[test]
fn one_d_jobs_plan_run_and_are_counted_like_every_granule() {
    require("python3");
    let sample = common::Sample::new(18, 5, 1, &["SSH"]);
    let root = sample.dir.path();
    // The inputs below the release directory: found from a source root above it.
    let inputs = root.join("V4r4").join("1D");
    edp::synth::oned::write_inputs(&inputs, 4, 3).unwrap();
    let jobs = root.join("jobs.txt");
    std::fs::write(
        &jobs,
        "[0, 'native', 'AVG_MON', 'all']\n[0, '1D', 'SNAP', 'all']\n\
         ['GLOBAL_MEAN_SEA_LEVEL', '1D', 'AVG_DAY', 'all']\n[1, '1D', 'AVG_MON', 'all']\n\
         ['SBO_CORE_PRODUCTS', '1D', 'SNAP', 'all']\n",
    )
    .unwrap();
    let out = root.join("out");
    let list = root.join("tasks.json");
    let o = edp()
        .arg("tasks")
        .arg("--jobs")
        .arg(&jobs)
        .arg("--source")
        .arg(root)
        .arg("--dest")
        .arg(&out)
        .arg("--grid")
        .arg(sample.grid_dir())
        .arg("-o")
        .arg(&list)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tasks = edp::tasks::read_task_list(&list).unwrap();
    let granules: Vec<String> = tasks
        .iter()
        .filter_map(|t| {
            t.granule
                .strip_prefix(&*out.to_string_lossy())
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        granules[1..],
        [
            "/V4r4/1D/snap/GLOBAL_MEAN_ATM_SURFACE_PRES/GLOBAL_MEAN_ATM_SURFACE_PRES_snap_ECCO_V4r4_1D.nc",
            "/V4r4/1D/day_mean/GLOBAL_MEAN_SEA_LEVEL/GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc",
            "/V4r4/1D/mon_mean/GLOBAL_MEAN_SEA_LEVEL/GLOBAL_MEAN_SEA_LEVEL_mon_mean_ECCO_V4r4_1D.nc",
            "/V4r4/1D/snap/SBO_CORE_PRODUCTS/SBO_CORE_PRODUCTS_snap_ECCO_V4r4_1D.nc",
        ]
    );
    // The 1D tasks as EDP's writer holds a list (relative locations, Python's JSON),
    // run from a directory where those locations do not resolve.
    let only: Vec<_> = tasks.into_iter().skip(1).collect();
    edp::tasks::write_task_list(&root.join("ours.json"), &only).unwrap();
    let lists = root.join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    let edp_list = lists.join("tasks.json");
    let o = Command::new("python3")
        .arg("-c")
        .arg(EDP_LIST)
        .arg(root.join("ours.json"))
        .arg(&edp_list)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/V4r4"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let elsewhere = tempfile::tempdir().unwrap();
    let o = edp()
        .current_dir(elsewhere.path())
        .arg("run")
        .arg("--tasks")
        .arg(&edp_list)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for d in edp::oned::DATASETS {
        let path = out.join(d.relative_path().unwrap());
        check_granule(&inputs, &path, &d);
    }
    // Counted as every granule: status by grouping, verify of sizes, sums and content.
    let o = edp().arg("status").arg(&out).output().unwrap();
    let status =
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        status.contains("4 tasks: 4 done, 0 failed, 0 not run"),
        "{status}"
    );
    for (g, f) in [
        ("GLOBAL_MEAN_ATM_SURFACE_PRES", "snap"),
        ("GLOBAL_MEAN_SEA_LEVEL", "day_mean"),
        ("GLOBAL_MEAN_SEA_LEVEL", "mon_mean"),
        ("SBO_CORE_PRODUCTS", "snap"),
    ] {
        assert!(
            status.lines().any(
                |l| l.split_whitespace().collect::<Vec<_>>()[..] == [g, "1D", f, "1", "0", "0"]
            ),
            "{g} {f}: {status}"
        );
    }
    let verify = |content: bool| {
        let mut c = edp();
        c.arg("verify").arg(&out);
        if content {
            c.arg("--content");
        }
        let o = c.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, text) = verify(true);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("4 granule(s)"), "{text}");
    // One byte of the SBO granule changed (same size): the checksum catches it.
    let sbo = out.join(edp::oned::DATASETS[3].relative_path().unwrap());
    let mut bytes = std::fs::read(&sbo).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&sbo, bytes).unwrap();
    let (code, text) = verify(false);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("SBO_CORE_PRODUCTS_snap_ECCO_V4r4_1D.nc"),
        "{text}"
    );
}

#[test]
fn a_1d_job_without_its_input_names_the_line_and_the_places_looked_at() {
    let sample = common::Sample::new(18, 5, 1, &["SSH"]);
    let root = sample.dir.path();
    let jobs = root.join("jobs.txt");
    std::fs::write(
        &jobs,
        "# only 1D\n['GLOBAL_MEAN_SEA_LEVEL', '1D', 'AVG_MON', 'all']\n",
    )
    .unwrap();
    let o = edp()
        .arg("tasks")
        .arg("--jobs")
        .arg(&jobs)
        .arg("--source")
        .arg(sample.source())
        .arg("--dest")
        .arg(root.join("out"))
        .arg("--grid")
        .arg(sample.grid_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 2: 1D GLOBAL_MEAN_SEA_LEVEL AVG_MON: no input GMSL.nc")
            && err.contains(&format!("{}/1D/GMSL.nc", sample.source())),
        "{err}"
    );
    // A bad 1D line is an error naming its line, before any work.
    std::fs::write(
        &jobs,
        "[0, 'native', 'AVG_MON', 'all']\n[2, '1D', 'AVG_DAY', 'all']\n",
    )
    .unwrap();
    let o = edp()
        .args(["run", "--jobs"])
        .arg(&jobs)
        .arg("--source")
        .arg(sample.source())
        .arg("--dest")
        .arg(root.join("out"))
        .arg("--grid")
        .arg(sample.grid_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("jobs.txt:2: 1D grouping 2 (SBO_CORE_PRODUCTS) is not published at AVG_DAY"),
        "{err}"
    );
    assert!(!root.join("out").join("V4r4").exists());
}

#[test]
fn a_broken_1d_input_fails_its_granule_only() {
    let sample = common::Sample::new(18, 5, 1, &["SSH"]);
    let inputs = std::path::Path::new(&sample.source()).join("1D");
    edp::synth::oned::write_inputs(&inputs, 3, 2).unwrap();
    // GMSL.nc without the barystatic term.
    let time = edp::ncio::VarDef::new("time", &["time"], edp::ncio::VarData::F64(vec![15.0, 45.0]));
    let mut time = time;
    time.attrs = vec![("units".into(), "days since 1992-01-01".into())];
    let def = edp::ncio::DatasetDef {
        dims: vec![("time".into(), 2)],
        vars: vec![
            time,
            edp::ncio::VarDef::new(
                "global_mean_sea_level_anomaly",
                &["time"],
                edp::ncio::VarData::F64(vec![0.1, 0.2]),
            ),
        ],
        global_attrs: vec![],
    };
    edp::ncio::write_atomic(def, &inputs.join("GMSL.nc")).unwrap();
    let out = sample.out();
    let jobs =
        "[0, 'native', 'AVG_MON', 'all']\n[1, '1D', 'AVG_MON', 'all']\n[2, '1D', 'SNAP', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(1));
    let gmsl = out.join(edp::oned::DATASETS[2].relative_path().unwrap());
    let sbo = out.join(edp::oned::DATASETS[3].relative_path().unwrap());
    assert!(!gmsl.exists() && sbo.is_file());
    // Nothing partial left beside it.
    if let Some(dir) = gmsl.parent().filter(|d| d.exists()) {
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    }
    let manifest = edp::run::manifest::Manifest::read(&out.join("edp-manifest.json")).unwrap();
    let failed: Vec<_> = manifest
        .granules
        .iter()
        .filter(|r| r.status == edp::run::journal::Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let why = failed[0].error.clone().unwrap_or_default();
    assert!(
        failed[0]
            .granule
            .ends_with("GLOBAL_MEAN_SEA_LEVEL_mon_mean_ECCO_V4r4_1D.nc")
            && why.contains("GMSL.nc")
            && why.contains("global_mean_barystatic_sea_level_anomaly"),
        "{why}"
    );
    assert_eq!(manifest.granules.len(), 3);
}
