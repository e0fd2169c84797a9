//! Running a task list: load the shared inputs once, produce every granule, isolate
//! failures so one bad granule never stops the others, and report what happened.
//!
//! [`spmd`] is the one runner: a task list over MPI ranks, or alone as a world of one
//! rank (the demo too), with journals, a manifest and restart. Each rank builds one
//! [`RunContext`] (metadata, grids, mapping factors, encoding, the [`Destination`]) and
//! passes it down; [`produce`] makes one granule (fetch, build, write, upload).

pub mod cost;
pub mod dest_lock;
pub mod destination;
pub mod journal;
pub mod manifest;
pub mod mpi;
pub mod produce;
pub mod signal;
pub mod spmd;
pub mod status;
pub mod store;
pub mod verify;
pub mod verify_content;
pub mod verify_oned;
pub mod verify_s3;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use destination::Destination;
pub use produce::{produce, produce_pipelined, ProduceError, Produced, Producing, WriteOptions};

use crate::granule::finite::NonFinitePolicy;
use crate::granule::{Context, Encoding};
use crate::grid::{Grid, GridError};
use crate::metadata::{MetadataError, MetadataSet, Product};
use crate::regrid::store::{FactorSource, FactorStore, Named};
use crate::regrid::Factors;
use crate::storage::Storage;
use crate::tasks::{GranuleName, Task};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load metadata")]
    Metadata(#[from] MetadataError),
    #[error("cannot load metadata")]
    MetadataLocation(#[from] crate::storage::LocationError),
    #[error("task {index} ({granule}) names no grid location (ecco_grid_loc) and none was given with --grid")]
    NoGrid { index: usize, granule: String },
}

/// What a task's granule name says it makes, parsed once when the run is planned and
/// carried with the task to the rank that makes it (which then does not parse the name
/// again to find its mapping factors).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Target {
    /// A native granule, or one whose name does not parse (the granule layer says why).
    Native,
    /// A lat-lon granule on the global grid of this resolution (degrees).
    Latlon(f64),
    /// A lat-lon granule whose label names no grid: why.
    Bad(String),
}

impl Target {
    /// The target of `task`'s granule.
    pub fn of(task: &Task) -> Target {
        let Ok(name) = GranuleName::parse(&task.granule) else {
            return Target::Native;
        };
        if name.product != Product::Latlon {
            return Target::Native;
        }
        match crate::granule::latlon::target_of(&name) {
            Ok(t) => Target::Latlon(t.resolution),
            Err(e) => Target::Bad(crate::error::chain(&e)),
        }
    }

    pub fn is_latlon(&self) -> bool {
        !matches!(self, Target::Native)
    }
}

/// Where shared inputs come from when the tasks do not say (or must be overridden), and
/// what a task without some of its fields does.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub grid: Option<PathBuf>,
    pub metadata: Option<PathBuf>,
    /// `--factors` / `--factors-cache`.
    pub factors: FactorSource,
    /// `--missing-fields`.
    pub missing_fields: MissingFields,
}

/// What a granule does when its task lacks some of its grouping's fields (no input for
/// them at that step; `edp tasks` leaves them out, as EDP does). One policy, the same in
/// the run's warning, the record's `missing_fields`, the summary and `edp verify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingFields {
    /// Written without them, with a warning; the record names them (`missing_fields`),
    /// the summary counts them and `edp verify --content` accepts their absence.
    #[default]
    Write,
    /// The task fails, naming the fields.
    Fail,
}

impl std::str::FromStr for MissingFields {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "write" => Ok(MissingFields::Write),
            "fail" => Ok(MissingFields::Fail),
            _ => Err(format!(
                "--missing-fields (or EDP_MISSING_FIELDS) expects write or fail, not '{s}'"
            )),
        }
    }
}

/// The fields of a task's grouping (output names) that the task has no input for; empty
/// when it has them all or its granule is not one of the metadata set's groupings.
pub fn missing_fields(task: &Task, metadata: &MetadataSet) -> Vec<String> {
    let Ok(name) = GranuleName::parse(&task.granule) else {
        return Vec::new();
    };
    let Some(g) = metadata.grouping_named(name.product, &name.prefix) else {
        return Vec::new();
    };
    g.fields
        .iter()
        .map(|f| g.output_name(f))
        .filter(|f| !task.variables.contains_key(*f))
        .map(str::to_string)
        .collect()
}

/// What every task of a rank shares, made once per rank and passed down explicitly:
/// the metadata set, the grids (loaded the first time a task names one), the mapping
/// factors, the encoding and the non-finite policy.
pub struct RunContext {
    metadata: Arc<MetadataSet>,
    grids: HashMap<PathBuf, Result<Arc<Grid>, String>>,
    encoding: Encoding,
    overrides: Overrides,
    factors: FactorStore,
    /// Where the granules go (and factors are built when neither `--factors` nor
    /// `--factors-cache` says).
    destination: Destination,
    /// S3 and the scratch cache.
    storage: Arc<Storage>,
    /// What non-finite values in wet cells do (`--nonfinite`).
    pub nonfinite: NonFinitePolicy,
    /// How a granule written by one rank is written, and whether it gets a quick-look.
    pub write: WriteOptions,
    /// Native coordinates compressed once per grid for all the run's granules.
    coords: Arc<crate::granule::native::CoordCache>,
}

impl RunContext {
    pub fn new(
        overrides: Overrides,
        encoding: Encoding,
        destination: Destination,
        storage: Arc<Storage>,
    ) -> Result<RunContext, RunError> {
        let metadata = match &overrides.metadata {
            // An S3 prefix is mirrored once per node into the scratch cache.
            Some(dir) => MetadataSet::from_dir(&storage.local_dir(&dir.to_string_lossy())?)?,
            None => MetadataSet::embedded()?,
        };
        log::info!("metadata: {}", metadata.origin);
        Ok(RunContext {
            metadata: Arc::new(metadata),
            grids: HashMap::new(),
            encoding,
            factors: FactorStore::new(overrides.factors.clone()),
            overrides,
            destination,
            storage,
            nonfinite: NonFinitePolicy::default(),
            write: WriteOptions::default(),
            coords: Default::default(),
        })
    }

    pub fn metadata(&self) -> &MetadataSet {
        &self.metadata
    }

    /// Where the run's granules go and its state is kept.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// S3 and the scratch cache.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The context for a task, loading its grid the first time it is named, and its
    /// mapping factors when it is a lat-lon granule.
    pub(crate) fn context(
        &mut self,
        index: usize,
        task: &Task,
        target: &Target,
    ) -> Result<Context, String> {
        let missing = missing_fields(task, &self.metadata);
        if !missing.is_empty() {
            let fields = missing.join(", ");
            match self.overrides.missing_fields {
                MissingFields::Fail => {
                    return Err(format!(
                        "no input for {fields} at this step (--missing-fields fail; \
                         `write` makes the granule without them)"
                    ))
                }
                MissingFields::Write => log::warn!(
                    "task {index}: {} is written without {fields} (no input at this step; \
                     recorded as missing_fields)",
                    task.granule
                ),
            }
        }
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
                // An S3 location or an archive is opened from its (once per node)
                // local copy.
                let g = match self.storage.grid_path(&loc) {
                    Ok(local) => Grid::open(&local)
                        .map(Arc::new)
                        .map_err(|e: GridError| crate::error::chain(&e)),
                    Err(e) => Err(crate::error::chain(&e)),
                };
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
        let factors = self.factors_for(task, target, &grid)?;
        Ok(Context {
            metadata: Arc::clone(&self.metadata),
            grid,
            encoding: self.encoding,
            nonfinite: self.nonfinite,
            factors,
            coords: Arc::clone(&self.coords),
        })
    }

    /// The mapping factors of a lat-lon task (`None` for a native one).
    fn factors_for(
        &self,
        task: &Task,
        target: &Target,
        grid: &Grid,
    ) -> Result<Option<Arc<Factors>>, String> {
        let target = match target {
            Target::Native => return Ok(None),
            Target::Bad(why) => return Err(why.clone()),
            Target::Latlon(res) => {
                crate::regrid::TargetGrid::global(*res).map_err(|e| crate::error::chain(&e))?
            }
        };
        let loc = task
            .ecco_mapping_factors_loc
            .as_deref()
            .filter(|l| !l.is_empty());
        // Factors named by an S3 location are fetched once per node into the scratch
        // cache and memory-mapped from there; EDP's (a prefix of pickles) are not ours.
        let file = loc.and_then(|loc| match self.storage.local_file(loc) {
            Ok(p) => Some(p),
            Err(e) => {
                self.factors.note_once(format!("fetch {loc}"), || {
                    format!(
                        "mapping factors {loc} are not one of our factor files: {}",
                        crate::error::chain(&e)
                    )
                });
                None
            }
        });
        let named = loc.map(|loc| Named {
            loc,
            file: file.as_deref(),
        });
        self.factors
            .get(grid, target, named, &self.destination.factor_cache())
            .map(Some)
            .map_err(|e| format!("lat-lon mapping: {}", crate::error::chain(&e)))
    }
}
