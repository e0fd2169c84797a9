//! Checks of what every task of a run shares (grid, source root, task-list paths), made
//! once on rank 0 before any work: a bad one is a configuration error (exit 2, one
//! line, nothing written) instead of the same failure repeated by every granule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::grid::Grid;
use crate::storage::{self, Storage};
use crate::tasks::Task;

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
pub fn check_grids(tasks: &[Task], grid: Option<&str>, storage: &Storage) -> anyhow::Result<()> {
    let mut locs: BTreeSet<String> = BTreeSet::new();
    let mut without = tasks
        .iter()
        .filter(|t| grid.is_none() && t.ecco_grid_loc.as_deref().map_or(true, str::is_empty));
    if let Some(t) = without.next() {
        anyhow::bail!(
            "{} task(s) name no grid location (ecco_grid_loc), the first {}; give one with --grid",
            1 + without.count(),
            t.granule
        );
    }
    for t in tasks {
        let loc = grid.or(t.ecco_grid_loc.as_deref()).unwrap_or_default();
        if !locs.insert(loc.to_string()) {
            continue;
        }
        let g = open_grid(loc, storage)?;
        // One local input of a task on this grid: its .meta says the model's size.
        let meta = tasks
            .iter()
            .filter(|t| grid.or(t.ecco_grid_loc.as_deref()) == Some(loc))
            .flat_map(|t| t.variables.values().flatten())
            .map(|pair| Path::new(&pair[1]))
            .find(|m| m.is_file());
        if let Some(m) = meta {
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
    }
    Ok(())
}

/// The source root of a task list: when none of its local input directories exists
/// (a wrong root, a list moved to another machine), no task can run.
pub fn check_inputs(tasks: &[Task]) -> anyhow::Result<()> {
    let dirs: BTreeSet<&Path> = tasks
        .iter()
        .flat_map(|t| t.variables.values().flatten().flatten())
        .filter(|f| !storage::is_s3(f))
        .filter_map(|f| Path::new(f).parent())
        .collect();
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

/// Relative locations of a task list read from `list`: EDP writes them relative to the
/// directory it ran in, so they are kept when they resolve from the current directory;
/// when they do not but resolve from the list's own directory, every relative location
/// of the list is taken against that directory instead (logged).
pub fn resolve_relative(tasks: &mut [Task], list: &Path) {
    let Some(base) = list.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return;
    };
    // Locations that must exist: the grid and the inputs.
    let probe = tasks.iter().find_map(|t| {
        t.ecco_grid_loc
            .iter()
            .chain(t.variables.values().flatten().flatten())
            .find(|l| !l.is_empty() && !storage::is_s3(l) && Path::new(l).is_relative())
            .cloned()
    });
    let Some(probe) = probe else {
        return;
    };
    if Path::new(&probe).exists() || !base.join(&probe).exists() {
        return;
    }
    log::info!(
        "the task list's relative locations are taken against its directory {} ({probe} is not in the current directory)",
        base.display()
    );
    let fix = |s: &mut String| {
        if !s.is_empty() && !storage::is_s3(s) && Path::new(s.as_str()).is_relative() {
            *s = base.join(&*s).to_string_lossy().into_owned();
        }
    };
    for t in tasks {
        fix(&mut t.granule);
        for l in [
            &mut t.ecco_grid_loc,
            &mut t.ecco_mapping_factors_loc,
            &mut t.ecco_metadata_loc,
            &mut t.ecco_cfg_loc,
        ]
        .into_iter()
        .flatten()
        {
            fix(l);
        }
        for pair in t.variables.values_mut().flatten() {
            pair.iter_mut().for_each(fix);
        }
    }
}

/// The directories a job's inputs are looked for in, for the message of an empty plan.
pub fn searched_dirs(source: &Path, release: &str, freq: crate::time::Frequency) -> Vec<PathBuf> {
    vec![
        source.join(freq.input_dir()),
        source.join(release).join(freq.input_dir()),
    ]
}
