//! `edp check-metadata [DIR]`: every problem of a metadata set at once, with file and
//! line (see [`crate::metadata::check_dir`]); the same checks gate `edp run` and
//! `edp tasks` before any work.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_OK, EXIT_USAGE};
use crate::metadata::{check_dir, check_embedded, Problem};
use crate::storage::Storage;

#[derive(Args, Debug)]
pub struct CheckMetadataArgs {
    /// Metadata directory (default: the embedded V4r4 set); local or s3://.
    dir: Option<PathBuf>,
}

pub fn run(a: &CheckMetadataArgs, storage: &Storage) -> anyhow::Result<u8> {
    let (origin, problems) = problems_of(a.dir.as_deref(), storage)?;
    if problems.is_empty() {
        println!("{origin}: no problems");
        return Ok(EXIT_OK);
    }
    println!("{}", report(&origin, &problems));
    Ok(if problems.iter().all(|p| p.warning) {
        EXIT_OK
    } else {
        EXIT_USAGE
    })
}

/// The problems of the set `--metadata` names (the embedded one when `None`).
pub(crate) fn problems_of(
    dir: Option<&Path>,
    storage: &Storage,
) -> anyhow::Result<(String, Vec<Problem>)> {
    let local = match dir {
        // An S3 prefix is mirrored once per node into the scratch cache.
        Some(d) => Some(storage.local_dir(&d.to_string_lossy())?),
        None => None,
    };
    // The checks load the set (from a repaired temporary copy when a file has a syntax
    // error), and loading warns: every such warning is one of the problems returned,
    // so the loader's own copy (naming the temporary path) is held back.
    let level = log::max_level();
    log::set_max_level(log::LevelFilter::Error.min(level));
    let problems = match &local {
        None => check_embedded(),
        Some(l) => check_dir(l),
    };
    log::set_max_level(level);
    let origin = match dir {
        None => "embedded V4r4".to_string(),
        Some(d) => d.display().to_string(),
    };
    Ok((origin, problems))
}

/// `<origin>: N problem(s)` and one line per problem.
pub(crate) fn report(origin: &str, problems: &[Problem]) -> String {
    let mut s = format!("metadata set {origin}: {} problem(s)", problems.len());
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}

/// The gate of `edp run` and `edp tasks`, before any work: an error listing every
/// problem that concerns the whole set or a grouping in `used` (`None`: every
/// grouping). The others, and warnings, are logged when `log_rest`.
pub(crate) fn gate(
    dir: Option<&Path>,
    storage: &Storage,
    used: Option<&HashSet<String>>,
    log_rest: bool,
) -> anyhow::Result<()> {
    let (origin, problems) = problems_of(dir, storage)?;
    let (blocking, rest): (Vec<Problem>, Vec<Problem>) = problems.into_iter().partition(|p| {
        !p.warning
            && match (&p.grouping, used) {
                (None, _) | (_, None) => true,
                (Some(g), Some(u)) => u.contains(g),
            }
    });
    if log_rest {
        for p in &rest {
            log::warn!("metadata: {p}");
        }
    }
    if blocking.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{}\n(`edp check-metadata` lists the same; fix the set before producing granules)",
        report(&origin, &blocking)
    )
}

/// The tasks `make` builds, between the two gates of `edp run` and `edp tasks`: the
/// problems of the whole set first (the set may not even load), then those of the
/// groupings the tasks make (`tasks_of` finds them in what `make` returns).
pub(crate) fn gated<T>(
    dir: Option<&Path>,
    storage: &Storage,
    make: impl FnOnce() -> anyhow::Result<T>,
    groupings_made: impl Fn(&T) -> HashSet<String>,
) -> anyhow::Result<T> {
    gate(dir, storage, Some(&Default::default()), false)?;
    let made = make()?;
    let used = groupings_made(&made);
    gate(dir, storage, Some(&used), true)?;
    Ok(made)
}

/// The groupings (granule name prefixes) of granule paths.
pub(crate) fn groupings_of_granules<'a>(
    granules: impl Iterator<Item = &'a str>,
) -> HashSet<String> {
    granules
        .filter_map(|g| crate::tasks::GranuleName::parse(g).ok())
        .map(|n| n.prefix)
        .collect()
}
