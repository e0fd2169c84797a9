//! Checks of what every task of a run shares (grid, source root, task-list paths), made
//! once on rank 0 before any work: a bad one is a configuration error (exit 2, one
//! line, nothing written) instead of the same failure repeated by every granule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::grid::Grid;
use crate::storage::{self, Storage};
use crate::tasks::{Relocation, TaskList};

/// Opens the grid at `loc` (local, archive or S3), with a hint when `loc` is the model
/// output or a source root rather than a grid.
pub fn open_grid(loc: &str, storage: &Storage) -> anyhow::Result<Grid> {
    let opened = storage
        .grid_path(Path::new(loc))
        .map_err(|e| crate::error::chain(&e))
        .and_then(|p| Grid::open(&p).map_err(|e| crate::error::chain(&e)));
    opened.map_err(|why| {
        let p = Path::new(loc);
        let model_output = !storage::is_s3(loc)
            && p.is_dir()
            && [
                "diags_monthly",
                "diags_daily",
                "diags_inst",
                "time_invariant",
            ]
            .iter()
            .any(|d| p.join(d).is_dir() || p.file_name().is_some_and(|n| n == *d));
        let hint = if model_output {
            " (this is model output, not a grid: --grid names the directory of XC, YC, \
             hFacC... or a GRID_GEOMETRY file)"
        } else {
            ""
        };
        anyhow::anyhow!("grid {loc}: {why}{hint}")
    })
}

/// The grid every task uses (`--grid`, else each task's `ecco_grid_loc`): each distinct
/// location opened once, and its LLC size checked against one input of a task using it.
/// One pass over the list (a mapped release list is parsed task by task, not held).
pub fn check_grids(tasks: &TaskList, grid: Option<&str>, storage: &Storage) -> anyhow::Result<()> {
    // Each grid location with the first local input .meta found for it.
    let mut locs: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    let (mut without, mut first_without) = (0usize, None);
    for t in tasks.iter() {
        let t = t?;
        let Some(loc) = grid
            .or(t.ecco_grid_loc.as_deref())
            .filter(|l| !l.is_empty())
        else {
            without += 1;
            first_without.get_or_insert_with(|| t.granule.clone());
            continue;
        };
        let meta = locs.entry(loc.to_string()).or_default();
        if meta.is_none() {
            *meta = t
                .variables
                .values()
                .flatten()
                .map(|pair| PathBuf::from(&pair[1]))
                .find(|m| m.is_file());
        }
    }
    if let Some(first) = first_without {
        anyhow::bail!(
            "{without} task(s) name no grid location (ecco_grid_loc), the first {first}; give one with --grid"
        );
    }
    for (loc, meta) in &locs {
        let g = open_grid(loc, storage)?;
        // One local input of a task on this grid: its .meta says the model's size.
        let Some(m) = meta else { continue };
        if let Ok(meta) = crate::mds::MdsMeta::parse(m) {
            let (nx, ny) = (meta.dims[0], meta.dims.get(1).copied().unwrap_or(0));
            if nx != g.n || ny != 13 * g.n {
                anyhow::bail!(
                    "grid {loc} is LLC{} but the input {} is {nx} x {ny} (LLC{nx}): \
                     give the grid of the model run with --grid",
                    g.n,
                    m.display()
                );
            }
        }
    }
    Ok(())
}

/// The source root of a task list: when none of its local input directories exists
/// (a wrong root, a list moved to another machine), no task can run.
pub fn check_inputs(tasks: &TaskList) -> anyhow::Result<()> {
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for t in tasks.iter() {
        let t = t?;
        dirs.extend(
            t.variables
                .values()
                .flatten()
                .flatten()
                .filter(|f| !storage::is_s3(f))
                .filter_map(|f| Path::new(f).parent().map(Path::to_path_buf)),
        );
    }
    if let Some(first) = dirs.iter().next() {
        if !dirs.iter().any(|d| d.is_dir()) {
            anyhow::bail!(
                "none of the {} input directories of the tasks exists (the first: {}): \
                 check the source root the task list was made with",
                dirs.len(),
                first.display()
            );
        }
    }
    Ok(())
}

/// Makes a local location absolute (against the current directory), so that a task
/// list works from wherever it is run; S3 locations are kept.
pub fn absolute(loc: &str) -> String {
    if storage::is_s3(loc) || loc.is_empty() {
        return loc.to_string();
    }
    std::path::absolute(loc)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| loc.to_string())
}

/// How the locations of a task list read from `list` are made absolute. EDP writes
/// them relative to the directory it ran in, so they are kept when they resolve from
/// the current directory; when they do not but resolve from the list's own directory,
/// every relative location of the list is taken against that directory instead
/// (logged). Decided on the first task that has a relative grid or input location.
pub fn relocation(tasks: &TaskList, list: &Path) -> anyhow::Result<Relocation> {
    let Some(base) = list.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(Relocation {
            absolute_granules: true,
            ..Relocation::default()
        });
    };
    let mut probe = None;
    for t in tasks.iter() {
        let t = t?;
        probe = t
            .ecco_grid_loc
            .iter()
            .chain(t.variables.values().flatten().flatten())
            .find(|l| !l.is_empty() && !storage::is_s3(l) && Path::new(l).is_relative())
            .cloned();
        if probe.is_some() {
            break;
        }
    }
    let Some(probe) = probe else {
        return Ok(Relocation {
            absolute_granules: true,
            ..Relocation::default()
        });
    };
    if Path::new(&probe).exists() || !base.join(&probe).exists() {
        return Ok(Relocation {
            absolute_granules: true,
            ..Relocation::default()
        });
    }
    log::info!(
        "the task list's relative locations are taken against its directory {} ({probe} is not in the current directory)",
        base.display()
    );
    Ok(Relocation {
        base: Some(base.to_path_buf()),
        absolute_granules: true,
    })
}

/// The directories a job's inputs are looked for in, for the message of an empty plan.
pub fn searched_dirs(source: &Path, release: &str, freq: crate::time::Frequency) -> Vec<PathBuf> {
    vec![
        source.join(freq.input_dir()),
        source.join(release).join(freq.input_dir()),
    ]
}
