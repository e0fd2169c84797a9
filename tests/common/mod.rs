//! Shared helpers of the integration tests: synthetic inputs, tasks, `ncdump -h` parsing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use edp::metadata::{MetadataSet, Product};
use edp::synth::{self, SynthConfig};
use edp::tasks::{self, Locations, Task};
use edp::time::{DailyDate, Frequency};

/// A synthetic dataset in a temporary directory.
pub struct Sample {
    pub dir: tempfile::TempDir,
    pub report: synth::SynthReport,
    pub cfg: SynthConfig,
}

impl Sample {
    pub fn new(n: usize, nz: usize, months: usize, variables: &[&str]) -> Sample {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SynthConfig {
            n,
            nz,
            months,
            variables: if variables.is_empty() {
                None
            } else {
                Some(variables.iter().map(|s| s.to_string()).collect())
            },
            ..SynthConfig::default()
        };
        let report = synth::generate(&cfg, dir.path()).expect("synth");
        Sample { dir, report, cfg }
    }

    pub fn grid_dir(&self) -> PathBuf {
        self.dir.path().join("grid")
    }

    pub fn source(&self) -> String {
        self.dir
            .path()
            .join(&self.cfg.release)
            .to_string_lossy()
            .into_owned()
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Monthly native tasks of a grouping for every synthesised month.
    /// Runs the `edp` binary (no MPI) on a jobs file holding `jobs` over this sample,
    /// granules under `dest`, with `extra` arguments; returns its exit code.
    pub fn run_jobs(&self, jobs: &str, dest: &Path, extra: &[&str]) -> Option<i32> {
        let file = self.dir.path().join("jobs.txt");
        std::fs::write(&file, jobs).expect("jobs file");
        Command::new(env!("CARGO_BIN_EXE_edp"))
            .args(["run", "--jobs"])
            .arg(&file)
            .arg("--source")
            .arg(self.source())
            .arg("--dest")
            .arg(dest)
            .arg("--grid")
            .arg(self.grid_dir())
            .args(extra)
            .env("EDP_MPI", "off")
            .status()
            .expect("edp run")
            .code()
    }

    pub fn tasks(&self, grouping: &str) -> Vec<Task> {
        self.product_tasks(Product::Native, grouping)
    }

    /// Monthly tasks of a grouping of `product` for every synthesised month.
    pub fn product_tasks(&self, product: Product, grouping: &str) -> Vec<Task> {
        self.monthly_tasks(&self.out(), &[(product, grouping)])
    }

    /// Monthly tasks of each (product, grouping), in that order, for every synthesised
    /// month, with granules under `dest`.
    pub fn monthly_tasks(&self, dest: &Path, groupings: &[(Product, &str)]) -> Vec<Task> {
        let m = MetadataSet::embedded().expect("metadata");
        let loc = Locations {
            dest_root: dest.to_string_lossy().into_owned(),
            grid: Some(self.grid_dir().to_string_lossy().into_owned()),
            ..Locations::default()
        };
        let mut list = Vec::new();
        for &(product, grouping) in groupings {
            let g = m.grouping_by_filename(product, grouping).expect("grouping");
            list.extend(tasks::tasks_for_steps(
                g,
                Frequency::AvgMon,
                &self.report.monthly_steps,
                &self.source(),
                &m.release,
                DailyDate::default(),
                &loc,
            ));
        }
        list
    }

    /// [`Sample::monthly_tasks`] written as a task list at `file`.
    pub fn task_list_at(
        &self,
        file: &Path,
        dest: &Path,
        groupings: &[(Product, &str)],
    ) -> (PathBuf, Vec<Task>) {
        let list = self.monthly_tasks(dest, groupings);
        tasks::write_task_list(file, &list).expect("task list");
        (file.to_path_buf(), list)
    }
}

/// Files under `dir`, recursively, relative names.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect();
    out.sort();
    out
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test when a tool the suite needs is missing: `scripts/setup.sh` installs
/// every one of them, so a missing tool is a broken set-up, never a reason to skip.
pub fn require(cmd: &str) {
    assert!(
        have(cmd),
        "`{cmd}` is not on PATH: run scripts/setup.sh (the tests need it and do not skip)"
    );
}

/// `ncdump -h` of a file, parsed.
#[derive(Debug, Default)]
pub struct Header {
    /// name → size, in order.
    pub dims: Vec<(String, String)>,
    /// name → (type, dims) in order.
    pub vars: Vec<(String, String, String)>,
    /// variable → ordered (attribute, raw value).
    pub var_attrs: BTreeMap<String, Vec<(String, String)>>,
    pub globals: Vec<(String, String)>,
}

pub fn parse_header(text: &str) -> Header {
    let mut h = Header::default();
    let mut section = "";
    for line in text.lines() {
        let t = line.trim();
        match t {
            "dimensions:" => section = "dims",
            "variables:" => section = "vars",
            "// global attributes:" => section = "globals",
            _ if t.is_empty() || t.starts_with("netcdf ") || t == "}" || t.starts_with("```") => {}
            _ => {
                let body = t.trim_end_matches(';').trim_end();
                match section {
                    "dims" => {
                        if let Some((n, s)) = body.split_once(" = ") {
                            h.dims.push((n.trim().into(), s.trim().into()));
                        }
                    }
                    "vars" | "globals" => {
                        if let Some(rest) = body.strip_prefix(':') {
                            if let Some((a, v)) = rest.split_once(" = ") {
                                h.globals.push((a.into(), v.into()));
                            }
                        } else if let Some((lhs, v)) = body.split_once(" = ") {
                            if let Some((var, attr)) = lhs.split_once(':') {
                                h.var_attrs
                                    .entry(var.into())
                                    .or_default()
                                    .push((attr.into(), v.into()));
                            }
                        } else if let Some((ty, rest)) = body.split_once(' ') {
                            let (name, dims) = rest.split_once('(').unwrap_or((rest, ")"));
                            h.vars.push((
                                name.into(),
                                ty.into(),
                                dims.trim_end_matches(')').into(),
                            ));
                            h.var_attrs.entry(name.into()).or_default();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    h
}

/// The header EDP wrote for a granule, from the spec fixture.
pub fn edp_header(granule_file: &str) -> Header {
    let text = include_str!("../fixtures/edp-granule-headers.md");
    let start = text
        .find(&format!("### {granule_file}"))
        .unwrap_or_else(|| panic!("{granule_file} not in the EDP headers fixture"));
    let rest = &text[start..];
    let open = rest.find("```\n").expect("code block") + 4;
    let close = rest[open..].find("```").expect("end of block") + open;
    parse_header(&rest[open..close])
}

pub fn ncdump_h(path: &Path) -> String {
    let out = Command::new("ncdump")
        .arg("-h")
        .arg(path)
        .output()
        .expect("run ncdump");
    assert!(
        out.status.success(),
        "ncdump -h {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The 0.5° mapping factors of `grid`, built into (or reused from) `cache_dir`, as a
/// run's context holds them for lat-lon granules.
pub fn half_degree_factors(
    grid: &edp::grid::Grid,
    cache_dir: &Path,
) -> std::sync::Arc<edp::regrid::Factors> {
    edp::regrid::store::FactorStore::new(Default::default())
        .get(
            grid,
            edp::regrid::TargetGrid::ecco_half_degree(),
            None,
            cache_dir,
        )
        .expect("mapping factors")
}

/// Removes from `ours` the attributes edp adds on purpose beyond EDP's set
/// (`edp::granule::compliance`) where EDP's header lacks them, so that what remains can
/// be compared with EDP's attribute set name for name.
pub fn without_deliberate_additions(ours: &mut Header, edp: &Header) {
    use edp::granule::compliance::{ADDED_GLOBALS, ADDED_VAR_ATTRS};
    let edp_globals: Vec<&String> = edp.globals.iter().map(|(k, _)| k).collect();
    ours.globals
        .retain(|(k, _)| !ADDED_GLOBALS.contains(&k.as_str()) || edp_globals.contains(&k));
    for (var, attrs) in ours.var_attrs.iter_mut() {
        let theirs: Vec<String> = edp
            .var_attrs
            .get(var)
            .map(|a| a.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        attrs.retain(|(k, _)| {
            !ADDED_VAR_ATTRS.contains(&(var.as_str(), k.as_str())) || theirs.contains(k)
        });
    }
}

/// Variable attributes whose values legitimately differ from EDP's (data-dependent).
pub const EDP_VAR_VALUE_DEVIATIONS: &[&str] = &["valid_min", "valid_max"];

/// Global attributes whose values legitimately differ from EDP's (time of writing, or a
/// documented deliberate change).
pub const EDP_GLOBAL_VALUE_DEVIATIONS: &[&str] = &[
    "date_created",
    "date_issued",
    "date_metadata_modified",
    "date_modified",
    "uuid",
    // Published DOI form instead of EDP's https://doi.org/PODAAC-...:
    "identifier_product_doi",
    "identifier_product_doi_authority",
    "metadata_link",
    // EDP's note credits xarray.to_netcdf():
    "coordinates_note",
    // EDP appends an empty project_summary, leaving a trailing space:
    "summary",
];

/// Our header (after [`without_deliberate_additions`]) against EDP's: the same
/// dimensions, variables (types, dimensions), each variable's attributes in order with
/// EDP's values, every EDP global with its value, the globals in EDP's order; values
/// that legitimately differ ([`EDP_VAR_VALUE_DEVIATIONS`],
/// [`EDP_GLOBAL_VALUE_DEVIATIONS`], [`deliberately_changed`]) are not compared.
pub fn assert_header_matches_edp(ours: &Header, edp: &Header, file: &str) {
    assert_eq!(ours.dims, edp.dims, "{file}: dimensions");
    assert_eq!(
        ours.vars, edp.vars,
        "{file}: variables, types and dimensions"
    );
    let names = |a: &Vec<(String, String)>| a.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    for (var, edp_attrs) in &edp.var_attrs {
        let our_attrs = &ours.var_attrs[var];
        assert_eq!(
            names(our_attrs),
            names(edp_attrs),
            "{file}: attributes of {var}, in order"
        );
        for ((k, ours_v), (_, edp_v)) in our_attrs.iter().zip(edp_attrs) {
            if !EDP_VAR_VALUE_DEVIATIONS.contains(&k.as_str())
                && !deliberately_changed(Some(var), k)
            {
                assert_eq!(ours_v, edp_v, "{file}: {var}:{k}");
            }
        }
    }
    let our_globals: BTreeMap<_, _> = ours.globals.iter().cloned().collect();
    for (k, edp_v) in &edp.globals {
        let ours_v = our_globals
            .get(k)
            .unwrap_or_else(|| panic!("{file}: global attribute {k} missing"));
        if !EDP_GLOBAL_VALUE_DEVIATIONS.contains(&k.as_str()) && !deliberately_changed(None, k) {
            assert_eq!(ours_v, edp_v, "{file}: global {k}");
        }
    }
    assert_eq!(
        names(&ours.globals),
        names(&edp.globals),
        "{file}: global attribute order"
    );
}

/// Every extent global attribute.
pub const EXTENTS: [&str; 6] = [
    "geospatial_lat_min",
    "geospatial_lat_max",
    "geospatial_lon_min",
    "geospatial_lon_max",
    "geospatial_vertical_min",
    "geospatial_vertical_max",
];

/// The vertical extents alone (native granules: their horizontal extents are the LLC
/// grid's cell corners, not EDP's template ±90/±180).
pub const VERTICAL_EXTENTS: [&str; 2] = ["geospatial_vertical_min", "geospatial_vertical_max"];

/// The extents edp takes from the cells' bounds (`edp::granule::compliance`) equal
/// EDP's values on the 0.5° grid (±90/±180) and V4r4's levels (0/−6134.5): every one
/// of `extents` EDP's header has must be in ours with the same value.
pub fn assert_extents_equal_edp(ours: &Header, edp: &Header, file: &str, extents: &[&str]) {
    let mut compared = 0;
    for (k, edp_v) in edp
        .globals
        .iter()
        .filter(|(k, _)| extents.contains(&k.as_str()))
    {
        let ours_v = ours.globals.iter().find(|(o, _)| o == k).map(|(_, v)| v);
        assert_eq!(ours_v, Some(edp_v), "{file}: global {k}");
        compared += 1;
    }
    assert!(compared >= 1, "{file}: no extent in EDP's header");
}

/// Whether edp changes this attribute's EDP value on purpose (`edp::granule::compliance`).
pub fn deliberately_changed(var: Option<&str>, attr: &str) -> bool {
    use edp::granule::compliance::{CHANGED_GLOBALS, CHANGED_VAR_ATTRS};
    match var {
        Some(v) => CHANGED_VAR_ATTRS.contains(&(v, attr)),
        None => CHANGED_GLOBALS.contains(&attr),
    }
}

/// A variable's values as bit patterns (NaN-safe equality of two granules' data).
pub fn value_bits(r: &edp::ncio::NcReader, var: &str) -> Vec<u64> {
    use edp::ncio::DType;
    match r.var_type(var).unwrap() {
        DType::F32 => r
            .read_f32(var)
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u64)
            .collect(),
        DType::F64 => r
            .read_f64(var)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect(),
        DType::I32 => r
            .read_i32(var)
            .unwrap()
            .iter()
            .map(|&x| x as u32 as u64)
            .collect(),
        DType::I8 => r
            .read_i8(var)
            .unwrap()
            .iter()
            .map(|&x| x as u8 as u64)
            .collect(),
    }
}
