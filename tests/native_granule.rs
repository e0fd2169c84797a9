//! Native granules from synthetic MDS inputs, checked against EDP's own output
//! headers, against the MDS input values, and for their failure behaviour.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{edp_header, files_under, ncdump_h, parse_header, require, Sample};
use edp::granule::{Context, Encoding, FILL_F32};
use edp::grid::Grid;
use edp::llc::PointType;
use edp::mds::MdsFile;
use edp::metadata::MetadataSet;
use edp::ncio::NcReader;

fn context(sample: &Sample) -> Context {
    Context {
        metadata: Arc::new(MetadataSet::embedded().unwrap()),
        grid: Arc::new(Grid::open(&sample.grid_dir()).unwrap()),
        encoding: Encoding::default(),
        nonfinite: Default::default(),
        factors: None,
        coords: Default::default(),
    }
}

#[test]
fn native_granules_match_edp_headers() {
    require("ncdump");
    // EDP's headers are LLC90 x 50 levels, January 1992.
    let sample = Sample::new(
        90,
        50,
        1,
        &[
            "SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT", "EXFtaux", "EXFtauy", "oceTAUX",
            "oceTAUY",
        ],
    );
    let ctx = context(&sample);
    for grouping in [
        "SEA_SURFACE_HEIGHT",
        "OCEAN_TEMPERATURE_SALINITY",
        "OCEAN_AND_ICE_SURFACE_STRESS",
    ] {
        let tasks = sample.tasks(grouping);
        assert_eq!(tasks.len(), 1, "{grouping}: one month synthesised");
        let produced = edp::run::produce(
            &tasks[0],
            &ctx,
            Default::default(),
            &edp::storage::Storage::new(&Default::default()),
        )
        .unwrap();
        let file = produced
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let mut ours = parse_header(&ncdump_h(&produced.path));
        let edp = edp_header(&file);
        common::without_deliberate_additions(&mut ours, &edp);

        common::assert_header_matches_edp(&ours, &edp, &file);
        common::assert_extents_equal_edp(&ours, &edp, &file, &common::VERTICAL_EXTENTS);
        // The horizontal extents are those of the cells' corners (XG/YG), which reach
        // beyond the centres.
        let r = NcReader::open(&produced.path).unwrap();
        let globals = r.global_attrs().unwrap();
        let attr = |k: &str| match globals.iter().find(|(n, _)| n == k) {
            Some((_, edp::ncio::AttrValue::F64(v))) => *v,
            other => panic!("{file}: {k} = {other:?}"),
        };
        let range = |v: Vec<f32>| {
            v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), x| {
                (lo.min(f64::from(*x)), hi.max(f64::from(*x)))
            })
        };
        let (ylo, yhi) = range(r.read_f32("YG").unwrap());
        let (xlo, xhi) = range(r.read_f32("XG").unwrap());
        assert_eq!(
            (attr("geospatial_lat_min"), attr("geospatial_lat_max")),
            (ylo, yhi),
            "{file}"
        );
        assert_eq!(
            (attr("geospatial_lon_min"), attr("geospatial_lon_max")),
            (xlo, xhi),
            "{file}"
        );
        let (yc_lo, _) = range(r.read_f32("YC").unwrap());
        assert!(ylo < yc_lo, "{file}: corners {ylo} below centres {yc_lo}");
        // The deliberate changes have the values we promise.
        let our_globals: std::collections::BTreeMap<_, _> = ours.globals.iter().cloned().collect();
        let doi = &our_globals["identifier_product_doi"];
        assert!(doi.starts_with("\"10.5067/"), "{file}: DOI {doi}");
        assert_eq!(
            our_globals["identifier_product_doi_authority"],
            "\"https://doi.org\""
        );
        assert!(our_globals["metadata_link"].contains("cmr.earthdata.nasa.gov"));
        assert!(our_globals["date_created"].ends_with("Z\""));
        assert_eq!(
            our_globals["summary"].trim_end_matches('"'),
            edp.globals
                .iter()
                .find(|(k, _)| k == "summary")
                .unwrap()
                .1
                .trim_end_matches('"')
                .trim_end()
        );
    }
}

/// Reads a whole variable of the granule as f32.
fn read(r: &NcReader, name: &str) -> Vec<f32> {
    r.read_f32(name).unwrap()
}

#[test]
fn values_equal_inputs_on_wet_cells_and_fill_on_dry() {
    let sample = Sample::new(12, 6, 1, &["THETA", "SALT", "UVEL", "VVEL", "WVELMASS"]);
    let ctx = context(&sample);
    let grid = &ctx.grid;
    let len = grid.level_len();
    for (grouping, checks) in [
        (
            "OCEAN_TEMPERATURE_SALINITY",
            vec![("THETA", "THETA", PointType::C)],
        ),
        (
            "OCEAN_VELOCITY",
            vec![
                ("UVEL", "UVEL", PointType::U),
                ("VVEL", "VVEL", PointType::V),
                ("WVEL", "WVELMASS", PointType::C),
            ],
        ),
    ] {
        let task = &sample.tasks(grouping)[0];
        let produced = edp::run::produce(
            task,
            &ctx,
            Default::default(),
            &edp::storage::Storage::new(&Default::default()),
        )
        .unwrap();
        let r = NcReader::open(&produced.path).unwrap();
        assert_eq!(
            read(&r, "XC"),
            grid.horizontal(edp::grid::GridVar::Xc).unwrap(),
            "XC is the grid's"
        );
        assert_eq!(
            read(&r, "YG"),
            grid.horizontal(edp::grid::GridVar::Yg).unwrap(),
            "YG is the grid's"
        );
        for (out, input, point) in checks {
            let values = read(&r, out);
            assert_eq!(
                values.len(),
                grid.nz * len,
                "{out}: one time, nz levels, 13 tiles"
            );
            let pair = &task.variables[out][0];
            assert!(pair[0].contains(&format!("{input}_mon_mean")));
            let mds = MdsFile::open(Path::new(&pair[0]), Path::new(&pair[1])).unwrap();
            let (mut want, mut hfac) = (vec![0f32; len], vec![0f32; len]);
            let (mut wet, mut dry) = (0, 0);
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for k in 0..grid.nz {
                mds.read_level_tiles(0, k, grid.n, &mut want).unwrap();
                grid.hfac_level(point, k, &mut hfac).unwrap();
                for c in 0..len {
                    let got = values[k * len + c];
                    if hfac[c] > 0.0 {
                        assert_eq!(got, want[c], "{out} level {k} cell {c} wet");
                        lo = lo.min(got);
                        hi = hi.max(got);
                        wet += 1;
                    } else {
                        assert_eq!(got, FILL_F32, "{out} level {k} cell {c} dry");
                        dry += 1;
                    }
                }
            }
            assert!(
                wet > 0 && dry > 0,
                "{out}: the sample has both wet and dry cells"
            );
            let attrs = r.var_attrs(out).unwrap();
            let attr = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            assert_eq!(
                attr("valid_min"),
                Some(edp::ncio::AttrValue::F32(lo)),
                "{out} valid_min"
            );
            assert_eq!(
                attr("valid_max"),
                Some(edp::ncio::AttrValue::F32(hi)),
                "{out} valid_max"
            );
            let storage = r.var_storage(out).unwrap();
            assert_eq!(storage.deflate, Some(5), "{out} deflate level");
            assert!(storage.shuffle, "{out} shuffle");
        }
        // Time: the first monthly mean is centred 366 h after the model start.
        assert_eq!(r.read_i32("time").unwrap(), vec![366]);
        assert_eq!(r.read_i32("time_bnds").unwrap(), vec![0, 732]);
        // Coordinates are compressed too.
        assert_eq!(r.var_storage("XC").unwrap().deflate, Some(5));
    }
}

fn edp_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edp"))
}

/// Writes the tasks of a grouping to `tasks.json` in the sample directory.
fn task_file(sample: &Sample, groupings: &[&str]) -> std::path::PathBuf {
    let tasks: Vec<_> = groupings.iter().flat_map(|g| sample.tasks(g)).collect();
    let path = sample.dir.path().join("tasks.json");
    edp::tasks::write_task_list(&path, &tasks).unwrap();
    path
}

fn run_tasks(tasks: &Path) -> std::process::Output {
    edp_bin()
        .args(["run", "--tasks"])
        .arg(tasks)
        .output()
        .expect("run edp")
}

/// No granule and no temporary file under the output directory for this grouping.
fn assert_nothing_written(sample: &Sample, grouping: &str) {
    let left: Vec<_> = files_under(&sample.out())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(grouping))
        .collect();
    assert!(
        left.is_empty(),
        "nothing may be left for {grouping}: {left:?}"
    );
}

#[test]
fn bad_inputs_fail_only_their_granule_with_a_message_naming_the_file() {
    let sample = Sample::new(
        8,
        4,
        1,
        &[
            "SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT", "UVEL", "VVEL", "WVELMASS",
        ],
    );
    let tasks = task_file(
        &sample,
        &[
            "SEA_SURFACE_HEIGHT",
            "OCEAN_TEMPERATURE_SALINITY",
            "OCEAN_VELOCITY",
        ],
    );
    let list = edp::tasks::read_task_list(&tasks).unwrap();
    let input = |grouping: &str, var: &str, which: usize| -> String {
        list.iter()
            .find(|t| t.granule.contains(grouping))
            .unwrap()
            .variables[var][0][which]
            .clone()
    };
    // 1. A truncated .data file.
    let ssh_data = input("SEA_SURFACE_HEIGHT", "SSHIBC", 0);
    let bytes = std::fs::read(&ssh_data).unwrap();
    std::fs::write(&ssh_data, &bytes[..bytes.len() - 100]).unwrap();
    // 2. A .meta whose dimensions disagree with the grid.
    let salt_meta = input("OCEAN_TEMPERATURE_SALINITY", "SALT", 1);
    let text = std::fs::read_to_string(&salt_meta).unwrap();
    let patched = text.replacen("    8,    1,    8,", "    9,    1,    9,", 1);
    assert_ne!(
        patched, text,
        "the test must change the .meta dimList: {text}"
    );
    std::fs::write(&salt_meta, patched).unwrap();
    // 3. A variable file that is missing.
    let uvel_data = input("OCEAN_VELOCITY", "UVEL", 0);
    std::fs::remove_file(&uvel_data).unwrap();

    let out = run_tasks(&tasks);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "some tasks failed: exit 1\n{stdout}\n{stderr}"
    );
    for (path, what) in [
        (&ssh_data, "truncated data"),
        (&salt_meta, "dims that disagree"),
        (&uvel_data, "missing file"),
    ] {
        assert!(
            stdout.contains(path.as_str()),
            "the report names {path} ({what}):\n{stdout}"
        );
    }
    for g in [
        "SEA_SURFACE_HEIGHT",
        "OCEAN_TEMPERATURE_SALINITY",
        "OCEAN_VELOCITY",
    ] {
        assert_nothing_written(&sample, g);
    }
    assert!(stdout.contains("0 done, 3 failed"), "{stdout}");
}

#[test]
fn one_bad_granule_does_not_stop_the_others() {
    let sample = Sample::new(8, 4, 2, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    let tasks = task_file(&sample, &["SEA_SURFACE_HEIGHT"]);
    let list = edp::tasks::read_task_list(&tasks).unwrap();
    assert_eq!(list.len(), 2);
    std::fs::write(&list[0].variables["ETAN"][0][0], b"short").unwrap();
    let out = run_tasks(&tasks);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        !Path::new(&list[0].granule).exists(),
        "the bad granule is absent"
    );
    assert!(
        Path::new(&list[1].granule).exists(),
        "the good granule is written"
    );
    assert!(stdout.contains("1 done, 1 failed"), "{stdout}");
    let leftovers: Vec<_> = files_under(&sample.out())
        .into_iter()
        .filter(|p| edp::storage::is_temp_name(p))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files remain: {leftovers:?}"
    );
    // All good: exit 0.
    let good = sample.dir.path().join("good.json");
    edp::tasks::write_task_list(&good, &list[1..]).unwrap();
    assert_eq!(run_tasks(&good).status.code(), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    let out = edp_bin()
        .args(["run", "--tasks", "/nonexistent/tasks.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/tasks.json"));
    let out = edp_bin().args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
