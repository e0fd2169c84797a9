//! Where a run's mapping factors come from: the file given with `--factors`, one of
//! ours named by the task, or a cache built on first use — beside the output (or in
//! a `--cache` directory) — so a run without factors builds them once instead of
//! failing.
//!
//! Factors are checked against the grid in use (its hash) before any use, and kept
//! open for the rest of the process. Several processes (MPI ranks) may ask for the
//! same cache at once: one builds under a lock file while the others wait, then all
//! map the same file.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use super::factors::{self, BuildOptions};
use super::format::{self, Factors, MAGIC};
use super::{grid_hash, GridHash, RegridError, TargetGrid};
use crate::error::FileError;
use crate::grid::Grid;
use crate::storage::lock::NodeLock;

/// Where factors come from when a task needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactorSource {
    /// `--factors FILE`: used for every task (and checked against the grid); `Err`
    /// says why this process could not have it (e.g. its node could not fetch the S3
    /// object): lat-lon tasks then fail with that reason rather than fall back to
    /// building factors.
    pub file: Option<Result<PathBuf, String>>,
    /// `--cache DIR`: where built factors are kept (default: beside the output).
    pub cache_dir: Option<PathBuf>,
}

type GridKey = (PathBuf, usize, usize, u64);

/// What a task names as its mapping factors (`ecco_mapping_factors_loc`).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    /// The location as written in the task (for messages).
    pub loc: &'a str,
    /// Its local file (fetched from S3 if need be), when there is one.
    pub file: Option<&'a Path>,
}

/// Factors opened so far, per grid and target resolution; one per process, owned by the
/// run's context (not global).
#[derive(Default)]
pub struct FactorStore {
    source: FactorSource,
    loaded: Mutex<HashMap<GridKey, Arc<Factors>>>,
    noted: Mutex<HashSet<String>>,
}

fn is_our_file(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
}

/// File name of cached factors: grid size, resolution, levels and grid hash.
pub fn cache_file_name(n: usize, target: &TargetGrid, levels: usize, hash: &GridHash) -> String {
    format!(
        "edp_factors_llc{n:04}_{}_{levels}lev_{}.bin",
        target.label(),
        hash.short()
    )
}

impl FactorStore {
    pub fn new(source: FactorSource) -> FactorStore {
        FactorStore {
            source,
            ..FactorStore::default()
        }
    }

    /// Logs `msg` once per `key` for the life of the store.
    pub fn note_once(&self, key: String, msg: impl FnOnce() -> String) {
        if let Ok(mut seen) = self.noted.lock() {
            if seen.insert(key) {
                log::info!("{}", msg());
            }
        }
    }

    /// The factors for `grid` at `target` resolution: `--factors`, else the factors the
    /// task names if they are ours, else the cache (`--factors-cache`, else
    /// `default_cache`), built there on first use.
    pub fn get(
        &self,
        grid: &Grid,
        target: TargetGrid,
        named: Option<Named<'_>>,
        default_cache: &Path,
    ) -> Result<Arc<Factors>, RegridError> {
        let key = (
            grid.source.clone(),
            grid.n,
            grid.nz,
            target.resolution.to_bits(),
        );
        // One lookup-or-load at a time: loading is rare, and this keeps a process
        // from building the same factors twice.
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| RegridError::Config("factor store poisoned by a panic".into()))?;
        if let Some(f) = loaded.get(&key) {
            return Ok(Arc::clone(f));
        }
        let given = match &self.source.file {
            Some(Err(why)) => return Err(RegridError::Config(why.clone())),
            Some(Ok(p)) => Some(p),
            None => None,
        };
        let task_loc = named.map(|n| n.loc).filter(|l| !l.is_empty());
        let task_file = named.and_then(|n| n.file).map(Path::to_path_buf);
        let explicit = match (given, &task_file) {
            (Some(f), _) => Some(f.clone()),
            (None, Some(p)) if is_our_file(p) => Some(p.clone()),
            _ => None,
        };
        let factors = match explicit {
            Some(path) => {
                if let Some(loc) = task_loc.filter(|_| task_file.as_ref() != Some(&path)) {
                    self.note_once(loc.to_string(), || {
                        format!(
                            "tasks name mapping factors {loc}; using {} instead",
                            path.display()
                        )
                    });
                }
                let f = Factors::open(&path)?;
                check(&f, grid, target)?;
                log::info!(
                    "mapping factors: {} (LLC{}, {} levels, {}x{}, grid {})",
                    path.display(),
                    f.header.n,
                    f.levels(),
                    f.header.target.nlon,
                    f.header.target.nlat,
                    f.header.grid_hash.short()
                );
                f
            }
            None => {
                let dir = self
                    .source
                    .cache_dir
                    .clone()
                    .unwrap_or_else(|| default_cache.to_path_buf());
                let t = Instant::now();
                let hash = grid_hash(grid, grid.nz)?;
                let path = dir.join(cache_file_name(grid.n, &target, grid.nz, &hash));
                if let Some(loc) = task_loc {
                    self.note_once(loc.to_string(), || {
                        format!(
                            "tasks name mapping factors {loc}, which are not edp's (EDP's are Python pickles); using {} instead",
                            path.display()
                        )
                    });
                }
                let f = cached_or_build(grid, target, &path, &hash)?;
                log::info!(
                    "mapping factors: {} ({:.1} s)",
                    path.display(),
                    t.elapsed().as_secs_f64()
                );
                f
            }
        };
        let f = Arc::new(factors);
        loaded.insert(key, Arc::clone(&f));
        Ok(f)
    }
}

/// [`check`] for factors and a grid that stay in use (a run's context): the grid
/// hash, the costly part (every level's wet mask through SHA-256, ~9 ms at LLC90, more
/// than writing a 2D granule), is compared once per (factors, grid) pair while both
/// live, remembered in the factors themselves; the cheap checks run every time.
pub fn check_in_use(
    f: &Arc<Factors>,
    grid: &Arc<Grid>,
    target: TargetGrid,
) -> Result<(), RegridError> {
    let same = |w: &Weak<Grid>| std::ptr::eq(w.as_ptr(), Arc::as_ptr(grid));
    let hashed = {
        let mut list = f.hashed_grids.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.iter().any(same)
    };
    check_with(f, grid, target, !hashed)?;
    if !hashed {
        let mut list = f.hashed_grids.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(same) {
            list.push(Arc::downgrade(grid));
        }
    }
    Ok(())
}

/// Checks opened factors against the grid and the target grid wanted.
pub fn check(f: &Factors, grid: &Grid, target: TargetGrid) -> Result<(), RegridError> {
    check_with(f, grid, target, true)
}

fn check_with(f: &Factors, grid: &Grid, target: TargetGrid, hash: bool) -> Result<(), RegridError> {
    if f.header.n != grid.n || f.levels() > grid.nz {
        return Err(RegridError::Shape(format!(
            "mapping factors {} are for LLC{} with {} levels, but the grid {} is LLC{} with {}",
            f.origin.display(),
            f.header.n,
            f.levels(),
            grid.source.display(),
            grid.n,
            grid.nz
        )));
    }
    if hash {
        f.check_grid(&grid_hash(grid, f.levels())?, &grid.source)?;
    }
    if f.header.target != target {
        return Err(RegridError::Shape(format!(
            "mapping factors {} are for a {}° grid, but the granule is on a {}° grid",
            f.origin.display(),
            f.header.target.resolution,
            target.resolution
        )));
    }
    Ok(())
}

/// Opens the cached factors at `path` if they are valid for `grid`, else builds
/// them under `path.lock` (or waits for the process that holds it).
fn cached_or_build(
    grid: &Grid,
    target: TargetGrid,
    path: &Path,
    hash: &GridHash,
) -> Result<Factors, RegridError> {
    let try_cached = || -> Option<Factors> {
        if !path.is_file() {
            return None;
        }
        match Factors::open(path).and_then(|f| check(&f, grid, target).map(|()| f)) {
            Ok(f) => Some(f),
            Err(e) => {
                log::warn!(
                    "ignoring cached mapping factors: {}",
                    crate::error::chain(&e)
                );
                None
            }
        }
    };
    let lock = path.with_extension("bin.lock");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(FileError::at(dir, "create directory"))?;
    }
    if let Some(f) = try_cached() {
        return Ok(f);
    }
    let _held = NodeLock::acquire(&lock, &format!("build {}", path.display()))
        .map_err(FileError::at(&lock, "create lock file"))?;
    // Another process may have built them while we waited for the lock.
    if let Some(f) = try_cached() {
        return Ok(f);
    }
    log::info!(
        "building mapping factors for LLC{} x {} levels at {}° into {}",
        grid.n,
        grid.nz,
        target.resolution,
        path.display()
    );
    let set = factors::build(
        grid,
        &BuildOptions {
            target,
            levels: grid.nz,
        },
    )?;
    if set.header.grid_hash != *hash {
        return Err(RegridError::Config(
            "grid hash changed while building factors".into(),
        ));
    }
    format::write(&set, path)?;
    Factors::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_carry_grid_and_resolution() {
        let name = cache_file_name(
            90,
            &TargetGrid::ecco_half_degree(),
            50,
            &GridHash([0xab; 32]),
        );
        assert_eq!(
            name,
            "edp_factors_llc0090_0p50deg_50lev_abababababababab.bin"
        );
    }
}
