//! Tasks of the 1D collections ([`crate::oned`]) in EDP's task schema, so that they flow
//! through `edp tasks`, task lists and `edp run` (journals, manifest, status, verify) as
//! every other granule does.
//!
//! A 1D task is one granule holding the whole record:
//!
//! - `granule`: `<dest>/V4r4/1D/<snap|day_mean|mon_mean>/<GROUPING>/<file>`, the file
//!   named as PO.DAAC publishes it (`GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc`);
//!   that name is what marks a task as 1D;
//! - `variables`: each field of the grouping → one component `[<input .nc>, ""]`: the
//!   time-series NetCDF file holding it (all fields of a task name the same file), and
//!   no `.meta`, which a NetCDF file does not need. A field left out is left out of the
//!   granule, as EDP does with a missing field;
//! - `dynamic_metadata`: the grouping's name, dimension `1D`, the release's time
//!   coverage, the frequency's time names, the grouping's comment and the PO.DAAC
//!   description as summary; the granule's attributes come from the metadata, as the
//!   ECCO script's did, and say the same.
//!
//! Inputs are found at `<source>/1D/<file>` or `<source>/<release>/1D/<file>` (where
//! `edp synth --one-d` writes them), local or on S3.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::plan::JobReport;
use super::{join, DynamicMetadata, InputPair, Locations, Task};
use crate::jobs::OneDJob;
use crate::metadata::MetadataSet;
use crate::oned::{OneD, OneDError};
use crate::storage::{self, S3};
use crate::time::Instant;

/// The places a 1D input is looked for under a source root, in order.
pub fn input_candidates(source: &str, release: &str, d: &OneD) -> [String; 2] {
    [
        join(source, &["1D", d.input]),
        join(source, &[release, "1D", d.input]),
    ]
}

/// The input of `d` under `source`, if there is one (`Err`: an S3 source that cannot
/// be asked).
pub fn find_input(
    d: &OneD,
    source: &str,
    release: &str,
    s3: Option<&S3>,
) -> Result<Option<String>, String> {
    for c in input_candidates(source, release, d) {
        let found = match storage::s3_url(&c) {
            None => Path::new(&c).is_file(),
            Some(url) => {
                let url = url.map_err(|e| crate::error::chain(&e))?;
                let s3 = s3.ok_or_else(|| format!("{c}: this planner reads local roots only"))?;
                s3.head(&url)
                    .map_err(|e| crate::error::chain(&e))?
                    .is_some()
            }
        };
        if found {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The task of `d` made from the time-series file `input`.
pub fn build_task(d: &OneD, input: &str, loc: &Locations) -> Result<Task, OneDError> {
    let clock = crate::time::ModelClock::v4r4();
    let centre = Instant(clock.start.0 + (clock.end.0 - clock.start.0) / 2);
    let pair: InputPair = [input.to_string(), String::new()];
    let variables: IndexMap<String, Vec<InputPair>> = d
        .fields()?
        .into_iter()
        .map(|f| (f, vec![pair.clone()]))
        .collect();
    let name = d.name()?;
    Ok(loc.task(
        join(&loc.dest_root, &[&d.relative_path()?]),
        variables,
        DynamicMetadata {
            name,
            dimension: "1D".into(),
            time_coverage_start: clock.start.iso(),
            time_coverage_end: clock.end.iso(),
            time_coverage_center: centre.iso(),
            time_long_name: d.freq.time_long_name().into(),
            time_coverage_duration: d.freq.duration().into(),
            time_coverage_resolution: d.freq.duration().into(),
            comment: d.comment()?,
            field_components: None,
            field_orientations: None,
            summary: d.summary()?,
        },
    ))
}

/// What the 1D jobs of a jobs file planned: a report per job (in order), and for each
/// job without a task, why.
#[derive(Debug, Default)]
pub struct OneDPlan {
    pub reports: Vec<JobReport>,
    pub missing: Vec<String>,
}

/// Plans the 1D jobs: each gives one task when its input exists under `source`
/// (handed to `sink`), else none with a warning naming the places looked at.
pub fn expand_jobs(
    jobs: &[OneDJob],
    m: &MetadataSet,
    source: &Path,
    loc: &Locations,
    s3: Option<&S3>,
    sink: &mut dyn FnMut(Vec<Task>) -> std::io::Result<()>,
) -> anyhow::Result<OneDPlan> {
    let mut out = OneDPlan::default();
    let source = source.to_string_lossy();
    for job in jobs {
        let d = &job.dataset;
        let mut report = JobReport {
            line: job.line,
            grouping: d.grouping_name()?,
            product: "1D".into(),
            freq: d.freq.job_name().into(),
            ..JobReport::default()
        };
        match find_input(d, &source, &m.release.version, s3).map_err(anyhow::Error::msg)? {
            Some(input) => {
                let task = build_task(d, &input, loc)?;
                report.tasks = 1;
                // The input's size (a local one) stands for the granule's data.
                report.data_bytes = std::fs::metadata(&input).map_or(0, |m| m.len());
                sink(vec![task])?;
            }
            None => {
                let why = format!(
                    "line {}: 1D {} {}: no input {} (looked for {})",
                    job.line,
                    report.grouping,
                    report.freq,
                    d.input,
                    input_candidates(&source, &m.release.version, d).join(", ")
                );
                log::warn!("job {why}");
                out.missing.push(why);
            }
        }
        out.reports.push(report);
    }
    Ok(out)
}

/// The 1D dataset a task makes, `None` for any other task; an error for a task that
/// says it is 1D (`dimension`) but names none of the four granules.
pub fn dataset_of(task: &Task) -> Result<Option<OneD>, String> {
    match OneD::from_granule(&task.granule) {
        Some(d) => Ok(Some(d)),
        None if task.dynamic_metadata.dimension.eq_ignore_ascii_case("1D") => {
            let names: Vec<String> = crate::oned::DATASETS
                .iter()
                .filter_map(|d| d.file_name().ok())
                .collect();
            Err(format!(
                "a 1D task's granule must be one of the V4r4 1D collections ({}), not {}",
                names.join(", "),
                task.granule
            ))
        }
        None => Ok(None),
    }
}

/// The (grouping, product, period) a 1D granule is counted under, `None` for others.
pub fn group_of(granule: &str) -> Option<(String, String, String)> {
    let d = OneD::from_granule(granule)?;
    Some((
        d.grouping_name().ok()?,
        "1D".into(),
        d.freq.output_token().into(),
    ))
}

/// The root of the EDP layout a 1D granule sits in (`<root>/V4r4/1D/<period>/<GROUPING>/`),
/// `None` for others or when the path does not follow the layout.
pub fn layout_root(granule: &Path) -> Option<PathBuf> {
    let d = OneD::from_granule(granule.to_str()?)?;
    let rel = d.relative_path().ok()?;
    let depth = Path::new(&rel).components().count();
    let mut root = granule;
    for _ in 0..depth {
        root = root.parent()?;
    }
    (root.join(&rel) == granule).then(|| root.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_round_trips_and_is_recognised() {
        let loc = Locations {
            dest_root: "DEST".into(),
            grid: Some("GRID".into()),
            ..Locations::default()
        };
        let d = crate::oned::DATASETS[1];
        let t = build_task(&d, "SRC/V4r4/1D/GMSL_day.nc", &loc).unwrap();
        assert_eq!(
            t.granule,
            "DEST/V4r4/1D/day_mean/GLOBAL_MEAN_SEA_LEVEL/GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc"
        );
        assert_eq!(t.variables.len(), 3);
        assert_eq!(t.dynamic_metadata.dimension, "1D");
        assert_eq!(t.dynamic_metadata.time_coverage_duration, "P1D");
        let json = serde_json::to_string(&t).unwrap();
        let back: Task = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(dataset_of(&back).unwrap(), Some(d));
        assert_eq!(
            group_of(&t.granule).unwrap(),
            (
                "GLOBAL_MEAN_SEA_LEVEL".into(),
                "1D".into(),
                "day_mean".into()
            )
        );
        assert_eq!(
            layout_root(Path::new(&t.granule)),
            Some(PathBuf::from("DEST"))
        );
        // A task saying 1D with another granule is refused, naming it.
        let mut odd = t.clone();
        odd.granule = "DEST/x.nc".into();
        assert!(dataset_of(&odd).unwrap_err().contains("DEST/x.nc"));
        // Other tasks are not 1D.
        assert_eq!(dataset_of(&Task::for_test("a/b.nc")).unwrap(), None);
    }
}
