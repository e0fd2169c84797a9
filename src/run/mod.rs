//! Running a task list: load the shared inputs once, produce every granule, isolate
//! failures so one bad granule never stops the others, and report what happened.
//!
//! [`run_serial`] is the plain in-process runner (the demo uses it); [`spmd`] runs a
//! task list over MPI ranks (or alone) with journals, a manifest and restart.

pub mod cost;
pub mod journal;
pub mod manifest;
pub mod mpi;
pub mod remote;
pub mod restart;
pub mod signal;
pub mod spmd;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::granule::finite::NonFinitePolicy;
use crate::granule::{self, Context, Encoding, GranuleError};
use crate::grid::{Grid, GridError};
use crate::metadata::{MetadataError, MetadataSet};
use crate::tasks::Task;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load metadata")]
    Metadata(#[from] MetadataError),
    #[error("cannot load metadata")]
    MetadataLocation(#[from] crate::storage::LocationError),
    #[error("task {index} ({granule}) names no grid location (ecco_grid_loc) and none was given with --grid")]
    NoGrid { index: usize, granule: String },
}

/// Where shared inputs come from when the tasks do not say (or must be overridden).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub grid: Option<PathBuf>,
    pub metadata: Option<PathBuf>,
}

/// The outcome of one task.
#[derive(Debug)]
pub struct TaskOutcome {
    pub index: usize,
    pub granule: String,
    pub result: Result<granule::Produced, String>,
    pub elapsed: Duration,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub outcomes: Vec<TaskOutcome>,
    pub elapsed: Duration,
}

impl RunSummary {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_err()).count()
    }
    pub fn done(&self) -> usize {
        self.outcomes.len() - self.failed()
    }
    pub fn bytes(&self) -> u64 {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .map(|p| p.bytes)
            .sum()
    }
}

/// Shared, read-only inputs loaded once per run (per distinct location).
pub struct Shared {
    metadata: Arc<MetadataSet>,
    grids: HashMap<PathBuf, Result<Arc<Grid>, String>>,
    encoding: Encoding,
    overrides: Overrides,
    /// What non-finite values in wet cells do (`--nonfinite`).
    pub nonfinite: NonFinitePolicy,
}

impl Shared {
    pub fn new(overrides: Overrides, encoding: Encoding) -> Result<Shared, RunError> {
        let metadata = match &overrides.metadata {
            // An S3 prefix is mirrored once per node into the scratch cache.
            Some(dir) => {
                MetadataSet::from_dir(&crate::storage::local_dir(&dir.to_string_lossy())?)?
            }
            None => MetadataSet::embedded()?,
        };
        log::info!("metadata: {}", metadata.origin);
        Ok(Shared {
            metadata: Arc::new(metadata),
            grids: HashMap::new(),
            encoding,
            overrides,
            nonfinite: NonFinitePolicy::default(),
        })
    }

    pub fn metadata(&self) -> &MetadataSet {
        &self.metadata
    }

    /// The context for a task, loading its grid the first time it is named.
    pub(crate) fn context(&mut self, index: usize, task: &Task) -> Result<Context, String> {
        let loc = match (&self.overrides.grid, &task.ecco_grid_loc) {
            (Some(g), _) => g.clone(),
            (None, Some(g)) => PathBuf::from(g),
            (None, None) => {
                return Err(RunError::NoGrid {
                    index,
                    granule: task.granule.clone(),
                }
                .to_string())
            }
        };
        let grid = self
            .grids
            .entry(loc.clone())
            .or_insert_with(|| {
                let t = Instant::now();
                let g = Grid::open(&loc)
                    .map(Arc::new)
                    .map_err(|e: GridError| error_chain(&e));
                if let Ok(g) = &g {
                    log::info!(
                        "grid: LLC{} x {} levels from {} ({:.2} s)",
                        g.n,
                        g.nz,
                        loc.display(),
                        t.elapsed().as_secs_f64()
                    );
                }
                g
            })
            .clone()?;
        Ok(Context {
            metadata: Arc::clone(&self.metadata),
            grid,
            encoding: self.encoding,
            nonfinite: self.nonfinite,
        })
    }
}

/// Produces every task in order; a failure is recorded and the run goes on.
pub fn run_serial(tasks: &[Task], shared: &mut Shared) -> RunSummary {
    let start = Instant::now();
    let mut summary = RunSummary::default();
    for (index, task) in tasks.iter().enumerate() {
        let t = Instant::now();
        let result = shared.context(index, task).and_then(|ctx| {
            granule::produce(task, &ctx).map_err(|e: GranuleError| error_chain(&e))
        });
        match &result {
            Ok(p) => log::info!(
                "[{}/{}] wrote {} ({:.1} MB, {:.2} s)",
                index + 1,
                tasks.len(),
                p.path.display(),
                p.bytes as f64 / 1e6,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => log::error!(
                "[{}/{}] task {index} failed: {}: {e}",
                index + 1,
                tasks.len(),
                task.granule
            ),
        }
        summary.outcomes.push(TaskOutcome {
            index,
            granule: task.granule.clone(),
            result,
            elapsed: t.elapsed(),
        });
    }
    summary.elapsed = start.elapsed();
    summary
}

/// An error with its sources, `a: b: c` (see [`crate::error::chain`]).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    crate::error::chain(e)
}
