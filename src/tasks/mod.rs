//! The task model: one self-contained description per output granule, in the JSON
//! schema of EDP's `edp_create_job_task_list`, so task lists flow both ways between
//! EDP and `edp`.
//!
//! A task names its output granule, its input MDS files per output variable, the
//! grid / mapping-factor / metadata / config locations, and the time and summary
//! metadata computed when the list was built. Building one task from a grouping and a
//! step lives here; [`discovery`] finds inputs and [`plan`] expands jobs into tasks.

use std::path::{Path, PathBuf};

pub mod discovery;
pub mod list;
pub mod oned;
pub mod plan;

pub use list::{Relocation, TaskList, TaskListWriter};
pub use plan::{build_from_jobs, Plan};
// GranuleName lives below the tasks (metadata checks and granules use it too).
pub use crate::granule_name::GranuleName;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jobs;
use crate::metadata::{Grouping, Product, Release};
use crate::time::{Coverage, DailyDate, Frequency};

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("cannot read task list {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("task list {path} is not a valid EDP task list")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write task list {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("granule name '{0}' is not of the form <GROUPING>_<mon_mean|day_mean|snap>_<date>_ECCO_<release>_<native|latlon>_<label>.nc (or <GROUPING>_ECCO_<release>_<native|latlon>_<label>.nc for a time-invariant one)")]
    GranuleName(String),
}

/// Time and description metadata computed when the task was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DynamicMetadata {
    pub name: String,
    pub dimension: String,
    pub time_coverage_start: String,
    pub time_coverage_end: String,
    pub time_coverage_center: String,
    pub time_long_name: String,
    pub time_coverage_duration: String,
    pub time_coverage_resolution: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_components: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_orientations: Option<Value>,
    pub summary: String,
}

/// One input component: `[<.data path>, <.meta path>]`.
pub type InputPair = [String; 2];

/// One granule to produce. Field order is EDP's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub granule: String,
    /// Output variable → input components (one for scalars; x then y for vectors).
    pub variables: IndexMap<String, Vec<InputPair>>,
    #[serde(default)]
    pub ecco_cfg_loc: Option<String>,
    #[serde(default)]
    pub ecco_grid_loc: Option<String>,
    #[serde(default)]
    pub ecco_mapping_factors_loc: Option<String>,
    #[serde(default)]
    pub ecco_metadata_loc: Option<String>,
    pub dynamic_metadata: DynamicMetadata,
}

/// Locations copied verbatim into every task (EDP's `*_loc` keys).
#[derive(Debug, Clone, Default)]
pub struct Locations {
    pub dest_root: String,
    pub grid: Option<String>,
    pub factors: Option<String>,
    pub metadata: Option<String>,
    pub config: Option<String>,
}

impl Locations {
    /// The task of `granule` with these locations.
    pub fn task(
        &self,
        granule: String,
        variables: IndexMap<String, Vec<InputPair>>,
        dynamic_metadata: DynamicMetadata,
    ) -> Task {
        Task {
            granule,
            variables,
            ecco_cfg_loc: self.config.clone(),
            ecco_grid_loc: self.grid.clone(),
            ecco_mapping_factors_loc: self.factors.clone(),
            ecco_metadata_loc: self.metadata.clone(),
            dynamic_metadata,
        }
    }
}

/// Joins path pieces with `/`, keeping `s3://` roots intact (as `os.path.join` does).
pub fn join(root: &str, parts: &[&str]) -> String {
    let mut s = root.trim_end_matches('/').to_string();
    for p in parts {
        s.push('/');
        s.push_str(p);
    }
    s
}

/// Builds the task of one grouping at one step from the inputs found for it.
pub fn build_task(
    grouping: &Grouping,
    freq: Frequency,
    coverage: &Coverage,
    variables: IndexMap<String, Vec<InputPair>>,
    release: &Release,
    loc: &Locations,
) -> Task {
    let name = GranuleName {
        prefix: grouping.filename.clone(),
        freq,
        date: coverage.file_date.clone(),
        version: release.version.clone(),
        product: grouping.product,
        label: match grouping.product {
            Product::Native => release.native_label.clone(),
            Product::Latlon => release.latlon_label.clone(),
        },
    };
    let granule = join(
        &loc.dest_root,
        &[
            &release.version,
            grouping.product.name(),
            freq.output_token(),
            &grouping.filename,
            &name.file_name(),
        ],
    );
    let tail = match grouping.product {
        Product::Native => &release.tail_native,
        Product::Latlon => &release.tail_latlon,
    };
    let summary = [freq.summary_head(), &grouping.name, tail]
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    loc.task(
        granule,
        variables,
        DynamicMetadata {
            name: grouping.name.clone(),
            dimension: grouping.dimension.clone(),
            time_coverage_start: coverage.start.iso(),
            time_coverage_end: coverage.end.iso(),
            time_coverage_center: coverage.centre.iso(),
            time_long_name: freq.time_long_name().into(),
            time_coverage_duration: freq.duration().into(),
            time_coverage_resolution: freq.duration().into(),
            comment: grouping.comment.clone(),
            field_components: grouping.field_components.clone(),
            field_orientations: grouping.field_orientations.clone(),
            summary,
        },
    )
}

/// Input pair for a variable in EDP's source layout:
/// `<root>/<freq dir>/<VAR>_<period>/<VAR>_<period>.<10-digit step>.{data,meta}`.
pub fn input_pair(source_root: &str, var: &str, freq: Frequency, step: u64) -> InputPair {
    let dir = format!("{var}_{}", freq.input_token());
    let base = format!("{dir}.{step:010}");
    [
        join(
            source_root,
            &[freq.input_dir(), &dir, &format!("{base}.data")],
        ),
        join(
            source_root,
            &[freq.input_dir(), &dir, &format!("{base}.meta")],
        ),
    ]
}

/// Tasks of one grouping at explicit steps, with the inputs that exist under
/// `source_root` (EDP's layout). A field missing at a step is left out of that task
/// with a warning, as EDP does; a step with no input at all gives no task.
pub fn tasks_for_steps(
    grouping: &Grouping,
    freq: Frequency,
    steps: &[u64],
    source_root: &str,
    release: &Release,
    daily: DailyDate,
    loc: &Locations,
) -> Vec<Task> {
    // Local source roots (the demo, tests and benchmarks).
    let mut inv = discovery::Inventory::new(Path::new(source_root), &release.version, None);
    let mut report = plan::JobReport::default();
    plan::expand_grouping(
        grouping,
        freq,
        &jobs::Steps::List(steps.to_vec()),
        &mut inv,
        release,
        daily,
        loc,
        &mut report,
    )
}

/// Reads a task list (a JSON array of tasks, as EDP writes it).
pub fn read_task_list(path: &Path) -> Result<Vec<Task>, TaskError> {
    // Streamed: the list's text is never held whole.
    let file = std::fs::File::open(path).map_err(|source| TaskError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_reader(std::io::BufReader::with_capacity(1 << 16, file)).map_err(|source| {
        TaskError::Json {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A task list from its JSON text; `origin` (a path or URL) names it in errors.
pub fn parse_task_list(origin: &Path, json: &[u8]) -> Result<Vec<Task>, TaskError> {
    serde_json::from_slice(json).map_err(|source| TaskError::Json {
        path: origin.to_path_buf(),
        source,
    })
}

/// Writes a task list pretty-printed with indent 4, as EDP does, streaming (the list's
/// JSON is never held whole).
pub fn write_task_list(path: &Path, tasks: &[Task]) -> Result<(), TaskError> {
    let wr = |source| TaskError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut w = TaskListWriter::create(path).map_err(wr)?;
    for t in tasks {
        w.push(t).map_err(wr)?;
    }
    w.finish().map(drop).map_err(wr)
}

/// EDP's own example tasks (its spec), for tests.
#[cfg(test)]
pub(crate) const SPEC_EXAMPLES: &str = include_str!("../../tests/fixtures/edp-task-examples.json");

#[cfg(test)]
impl Task {
    /// [`SPEC_EXAMPLES`], parsed.
    pub(crate) fn spec_examples() -> Vec<Task> {
        serde_json::from_str(SPEC_EXAMPLES).unwrap()
    }

    /// A task for tests: `granule` with no inputs and empty dynamic metadata.
    pub(crate) fn for_test(granule: &str) -> Task {
        let json = format!(
            r#"{{"granule":"{granule}","variables":{{}},"dynamic_metadata":{{"name":"n","dimension":"2D",
            "time_coverage_start":"","time_coverage_end":"","time_coverage_center":"",
            "time_long_name":"","time_coverage_duration":"","time_coverage_resolution":"","summary":""}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataSet;

    #[test]
    fn reads_edp_written_tasks() {
        let tasks = Task::spec_examples();
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[0].variables["SSH"].len(), 1);
        assert_eq!(tasks[1].variables["EXFtaue"].len(), 2);
        assert!(tasks[1].dynamic_metadata.field_components.is_some());
        // Round trip keeps keys and order.
        let back: Vec<Task> =
            serde_json::from_str(&serde_json::to_string(&tasks).unwrap()).unwrap();
        assert_eq!(back, tasks);
    }

    #[test]
    fn granule_names_parse_and_rebuild() {
        let g = GranuleName::parse(
            "D/V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc",
        )
        .unwrap();
        assert_eq!(g.prefix, "SEA_SURFACE_HEIGHT");
        assert_eq!(g.freq, Frequency::AvgMon);
        assert_eq!(g.date, "1992-01");
        assert_eq!(g.product, Product::Native);
        assert_eq!(g.label, "llc0090");
        assert_eq!(
            g.file_name(),
            "SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc"
        );
        let s = GranuleName::parse(
            "OCEAN_TEMPERATURE_SALINITY_snap_1992-01-02T000000_ECCO_V4r4_latlon_0p50deg.nc",
        )
        .unwrap();
        assert_eq!(s.freq, Frequency::Snap);
        assert_eq!(s.date, "1992-01-02T000000");
        assert!(GranuleName::parse("whatever.nc").is_err());
    }

    #[test]
    fn built_task_matches_edp_example() {
        let m = MetadataSet::embedded().unwrap();
        let g = &m.groupings_native[0];
        let cov = m
            .release
            .clock
            .coverage(Frequency::AvgMon, 732, DailyDate::default());
        let vars = g
            .fields
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    vec![input_pair("SOURCE_ROOT/V4r4", f, Frequency::AvgMon, 732)],
                )
            })
            .collect();
        let loc = Locations {
            dest_root: "DEST_ROOT".into(),
            grid: Some("GRID_DIR".into()),
            factors: Some("FACTORS_DIR/V4r4".into()),
            metadata: Some("METADATA_DIR".into()),
            config: Some("CONFIG_DIR/config_V4r4.yaml".into()),
        };
        let task = build_task(g, Frequency::AvgMon, &cov, vars, &m.release, &loc);
        let expected = Task::spec_examples();
        assert_eq!(task, expected[0]);
    }
}
