//! One task's granule from start to finish: fetch its S3 inputs into the scratch cache,
//! describe the granule ([`granule::build`]), write it atomically ([`ncio`]) and, for an
//! `s3://` granule, upload it (checksummed on the way).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::granule::{self, Context, GranuleError};
use crate::ncio::{self, NcError};
use crate::storage::{self, LocationError, Storage};
use crate::tasks::Task;

/// What went wrong producing a granule.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Granule(#[from] GranuleError),
    #[error(transparent)]
    Write(#[from] NcError),
    #[error(transparent)]
    Storage(#[from] LocationError),
}

/// How the run writes each granule a rank writes alone: the run's choices, kept apart
/// from the values' encoding ([`granule::Encoding`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Direct chunk writes or everything through netCDF-C (`--writer`).
    pub method: ncio::WriteMethod,
    /// Also draw a quick-look PNG beside each local granule (`--quicklook`).
    pub quicklook: bool,
}

/// A granule written.
#[derive(Debug, Clone)]
pub struct Produced {
    pub path: PathBuf,
    pub bytes: u64,
    pub elapsed: Duration,
    /// sha256 of the granule: of an uploaded one computed while uploading, of a local
    /// one written by this rank alone read back on the committing thread once it is in
    /// place; `None` for one a group of ranks wrote. The ETag is an upload's.
    pub sha256: Option<String>,
    pub etag: Option<String>,
    /// Non-finite wet values written as fill (`--nonfinite fill`), all fields together.
    pub nonfinite_filled: u64,
    /// Variables BitRound-quantized, with the significant bits kept (empty: none).
    pub significant_bits: std::collections::BTreeMap<String, u8>,
    /// File name of the quick-look PNG written beside the granule (`--quicklook`).
    pub quicklook: Option<String>,
}

/// Draws the quick-look of a written local granule beside it (`<granule stem>.png`).
/// A granule that cannot be drawn stays done: the image is an extra, so its failure is
/// logged and leaves no image (and no manifest entry).
fn quicklook(granule: &std::path::Path) -> Option<String> {
    let png = granule.with_extension("png");
    match crate::plot::quicklook(granule, &Default::default()).and_then(|img| img.write_png(&png)) {
        Ok(()) => png.file_name().map(|n| n.to_string_lossy().into_owned()),
        Err(e) => {
            log::warn!(
                "quick-look of {}: {}",
                granule.display(),
                crate::error::chain(&e)
            );
            None
        }
    }
}

impl Produced {
    /// A granule written locally by a group of ranks (no upload).
    fn local(
        path: PathBuf,
        report: ncio::WriteReport,
        nonfinite_filled: u64,
        significant_bits: std::collections::BTreeMap<String, u8>,
        quicklook: Option<String>,
    ) -> Produced {
        Produced {
            path,
            bytes: report.bytes,
            elapsed: report.elapsed,
            sha256: None,
            etag: None,
            nonfinite_filled,
            significant_bits,
            quicklook,
        }
    }
}

/// The task's S3 inputs fetched into the scratch cache (kept there while the returned
/// value lives).
fn fetch_inputs(task: &Task, storage: &Storage) -> Result<storage::LocalInputs, LocationError> {
    storage.fetch_inputs(
        task.variables
            .values()
            .flatten()
            .flatten()
            .map(String::as_str),
    )
}

/// The task with its S3 inputs replaced by their local copies (`None`: all local).
fn with_local_inputs(task: &Task, inputs: &storage::LocalInputs) -> Option<Task> {
    if inputs.is_empty() {
        return None;
    }
    let mut t = task.clone();
    for p in t.variables.values_mut().flatten().flatten() {
        *p = inputs.local(p).to_string();
    }
    Some(t)
}

/// Produces the granule of one task: assemble, then write atomically under the
/// task's `granule` path — or, for an `s3://` granule, write it locally and upload it.
pub fn produce(
    task: &Task,
    ctx: &Context,
    options: WriteOptions,
    storage: &Storage,
) -> Result<Produced, ProduceError> {
    produce_pipelined(task, ctx, options, storage)?.finish()
}

/// A granule written, perhaps still being committed (fsync and rename on the
/// committing thread) while the caller goes on with the next one.
pub struct Producing {
    produced: Produced,
    commit: Option<ncio::PendingWrite>,
    quicklook: bool,
}

impl Producing {
    /// Waits for the commit (and the checksum taken after it): the granule is in
    /// place, durable, once this is `Ok`.
    pub fn finish(self) -> Result<Produced, ProduceError> {
        let mut p = self.produced;
        if let Some(commit) = self.commit {
            let waited = Instant::now();
            let (report, sha256) = commit.wait_checksummed()?;
            p.bytes = report.bytes;
            p.sha256 = sha256;
            p.elapsed += waited.elapsed();
        }
        if self.quicklook {
            p.quicklook = quicklook(&p.path);
        }
        Ok(p)
    }
}

impl From<Produced> for Producing {
    /// A granule already in place.
    fn from(produced: Produced) -> Producing {
        Producing {
            produced,
            commit: None,
            quicklook: false,
        }
    }
}

/// [`produce`] without waiting for a local granule's commit: [`Producing::finish`]
/// does, so the disk's fsyncs overlap the next granule's work.
pub fn produce_pipelined(
    task: &Task,
    ctx: &Context,
    options: WriteOptions,
    storage: &Storage,
) -> Result<Producing, ProduceError> {
    let start = Instant::now();
    let remote = storage::s3_url(&task.granule)
        .transpose()
        .map_err(LocationError::from)?;
    // S3 inputs are read from the scratch cache, kept there until the granule is written.
    let inputs = fetch_inputs(task, storage)?;
    let local_task = with_local_inputs(task, &inputs);
    let built = granule::build(local_task.as_ref().unwrap_or(task), ctx)?;
    let path = PathBuf::from(&task.granule);
    let Some(url) = remote else {
        let commit = ncio::Commit::Background(storage.committer());
        let commit = ncio::write(built.def, &path, options.method, commit)?;
        return Ok(Producing {
            produced: Produced {
                path,
                bytes: 0,
                elapsed: start.elapsed(),
                sha256: None,
                etag: None,
                nonfinite_filled: built.nonfinite.filled(),
                significant_bits: built.significant_bits,
                quicklook: None,
            },
            commit: Some(commit),
            quicklook: options.quicklook,
        });
    };
    if options.quicklook {
        log::warn!(
            "{}: quick-looks are drawn for local granules only",
            task.granule
        );
    }
    // The same write and commit, onto the staging path; the upload puts it in place.
    let staged = storage.staging_path(&url)?;
    ncio::write(built.def, &staged, options.method, ncio::Commit::Now)?.wait()?;
    let up = storage.upload_granule(&staged, &url)?;
    Ok(Producing::from(Produced {
        path,
        bytes: up.size,
        elapsed: start.elapsed(),
        sha256: Some(up.sha256),
        etag: up.etag,
        nonfinite_filled: built.nonfinite.filled(),
        significant_bits: built.significant_bits,
        quicklook: None,
    }))
}

/// Produces the granule of one task together with the other ranks of `group`, which
/// all call this for the same task: one file, written by gathering the compressed
/// chunks to the group's first rank ([`ncio::gather`]) or collectively through parallel
/// HDF5 (`ncio::collective`). Local granules only (an upload has one writer).
pub fn produce_grouped(
    task: &Task,
    ctx: &Context,
    storage: &Storage,
    group: &dyn ncio::group::RankGroup,
    method: ncio::GroupWriteMethod,
    draw_quicklook: bool,
) -> Result<Produced, ProduceError> {
    if storage::s3_url(&task.granule).is_some() {
        return Err(GranuleError::Unsupported(
            "a granule on S3 is written by one rank, not by a group".into(),
        )
        .into());
    }
    let inputs = fetch_inputs(task, storage);
    let local_task = inputs
        .as_ref()
        .ok()
        .and_then(|i| with_local_inputs(task, i));
    // Every rank of the group builds (checks) the same inputs; they agree on the
    // outcome before writing, so a rank that cannot does not hang the rest.
    // Each rank reads and checks only its share of the levels, once, as it makes them.
    let built = inputs
        .map_err(ProduceError::from)
        .and_then(|_| Ok(granule::build(local_task.as_ref().unwrap_or(task), ctx)?));
    let failure = built.as_ref().err().map(|e| crate::error::chain(e));
    if let Err(failed) = group.all_ok(failure.as_deref()) {
        return Err(built.err().unwrap_or_else(|| {
            NcError::Peer {
                path: PathBuf::from(&task.granule),
                stage: "building the granule".into(),
                failed,
            }
            .into()
        }));
    }
    let built = built?;
    let path = PathBuf::from(&task.granule);
    let written: Result<ncio::WriteReport, ProduceError> = match method {
        ncio::GroupWriteMethod::Gather => {
            ncio::gather::write_gathered(built.def, &path, group).map_err(Into::into)
        }
        #[cfg(feature = "parallel-hdf5")]
        ncio::GroupWriteMethod::Collective => {
            ncio::collective::write_collective(built.def, &path, group).map_err(Into::into)
        }
        #[cfg(not(feature = "parallel-hdf5"))]
        ncio::GroupWriteMethod::Collective => Err(GranuleError::Unsupported(
            "the collective group writer needs the parallel-HDF5 build".into(),
        )
        .into()),
    };
    let report = written.inspect_err(|e| {
        // The group's first rank records the task (with the failing rank's message); a
        // failure found on another rank is also told in that rank's log.
        if !matches!(e, ProduceError::Write(NcError::Peer { .. })) && group.rank() > 0 {
            log::error!(
                "rank {} of the group writing {}: {}",
                group.rank(),
                task.granule,
                crate::error::chain(e)
            );
        }
    })?;
    // Each rank counted the non-finite values of the levels it made; those counted
    // while building were counted alike on every rank, so once.
    let shared = if group.rank() > 0 {
        built.nonfinite.known
    } else {
        0
    };
    let nonfinite_filled = group.all_sum_u64(built.nonfinite.filled().saturating_sub(shared));
    // The group's first rank draws it, once the file is in place.
    let quicklook = (draw_quicklook && group.rank() == 0)
        .then(|| quicklook(&path))
        .flatten();
    Ok(Produced::local(
        path,
        report,
        nonfinite_filled,
        built.significant_bits,
        quicklook,
    ))
}
