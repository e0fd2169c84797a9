//! `edp factors`: build the native → lat-lon mapping factors of a grid into one file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;

use super::{init_threads, EXIT_OK};
use crate::grid::Grid;
use crate::regrid::factors::{self, BuildOptions};
use crate::regrid::{format, TargetGrid};

#[derive(Args, Debug)]
pub struct FactorsArgs {
    /// Grid location: MDS grid directory or GRID_GEOMETRY native file.
    #[arg(long)]
    grid: PathBuf,
    /// Factor file to write (replaced atomically).
    #[arg(short = 'o', long = "output", alias = "out", value_name = "FILE")]
    out: PathBuf,
    /// Target grid resolution in degrees (ECCO: 0.5).
    #[arg(long, default_value_t = 0.5)]
    resolution: f64,
    /// Levels to build (default: all of the grid's).
    #[arg(long)]
    levels: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = crate::settings::threads)]
    threads: Option<usize>,
}

pub fn run(a: &FactorsArgs, storage: &crate::storage::Storage) -> anyhow::Result<u8> {
    init_threads(a.threads);
    let t = Instant::now();
    let grid = storage
        .grid_path(&a.grid)
        .map_err(anyhow::Error::from)
        .and_then(|p| Ok(Grid::open(&p)?))
        .with_context(|| format!("opening grid {}", a.grid.display()))?;
    let target = TargetGrid::global(a.resolution)?;
    let opts = BuildOptions {
        target,
        levels: a.levels.unwrap_or(grid.nz),
    };
    let loaded = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let set = factors::build(&grid, &opts)?;
    let built = t.elapsed().as_secs_f64();
    let bytes = format::write(&set, &a.out)?;
    let rows: usize = set.levels.iter().map(|l| l.targets.len()).sum();
    let entries: usize = set.levels.iter().map(|l| l.cols.len()).sum();
    println!(
        "LLC{} grid {} loaded in {loaded:.2} s; factors for {} level(s) onto {}x{} ({}°) built in {built:.2} s",
        grid.n,
        grid.source.display(),
        opts.levels,
        target.nlon,
        target.nlat,
        target.resolution
    );
    println!(
        "min/max cell side {:.0}/{:.0} m, neighbour cap {}; {} rows, {} entries; surface: {} of {} cells wet",
        set.header.min_l,
        set.header.max_l,
        set.header.neighbours,
        rows,
        entries,
        set.levels[0].targets.len(),
        target.len()
    );
    println!(
        "wrote {} ({:.1} MB, grid hash {})",
        a.out.display(),
        bytes as f64 / 1e6,
        set.header.grid_hash
    );
    Ok(EXIT_OK)
}
