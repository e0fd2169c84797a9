//! The ranks of a group writing one file together, as `ncio` sees them: the group
//! itself ([`RankGroup`], which the run's MPI module implements; `ncio` sends and
//! receives only bytes through it) and the agreement after each step ([`Agreement`]),
//! so that no rank waits forever for one that failed. Both group writers use them:
//! [`super::gather`] and the parallel-HDF5 `collective`.

use std::path::{Path, PathBuf};

use super::commit::told_as_full_disk;
use super::write::validate;
use super::{DatasetDef, NcError};

/// The group of ranks writing one file, as the group write methods need it. The run's MPI
/// module implements it; `ncio` sends and receives only bytes through it.
pub trait RankGroup {
    /// This rank's index in the group (0 names, writes and renames the file).
    fn rank(&self) -> usize;
    /// Ranks in the group.
    fn size(&self) -> usize;
    /// Rank 0's `data` on every rank of the group.
    fn broadcast_bytes(&self, data: Vec<u8>) -> Vec<u8>;
    /// True on every rank iff `ok` is true on every rank of the group.
    fn all_true(&self, ok: bool) -> bool;
    /// `Ok` on every rank iff no rank of the group brought a failure (its message);
    /// otherwise `Err` everywhere, with the lowest failing rank and its message on the
    /// group's first rank (`None` on the others).
    fn all_ok(&self, failure: Option<&str>) -> Result<(), Option<(usize, String)>>;
    /// Element-wise minimum over the group, in place on every rank.
    fn all_min_f32(&self, values: &mut [f32]);
    /// Sum over the group, on every rank.
    fn all_sum_u64(&self, value: u64) -> u64;
    /// Sends `bytes` to the group's first rank (returns once they are sent).
    fn send_to_first(&self, bytes: &[u8]);
    /// On the group's first rank: a message another rank sent, if one is waiting.
    fn try_receive(&self) -> Option<(usize, Vec<u8>)>;
    /// The group's communicator, for `nc_create_par`.
    #[cfg(feature = "parallel-hdf5")]
    fn comm(&self) -> mpi::ffi::MPI_Comm;
}

/// The ranks of a group agreeing on each step's outcome: every rank learns whether all
/// succeeded, and the first rank gets the failing rank's message.
pub(super) struct Agreement<'a> {
    pub(super) group: &'a dyn RankGroup,
    pub(super) path: &'a Path,
    /// The temporary file once it exists: a failure on a (nearly) full file system is
    /// told so ([`told_as_full_disk`]), measured before the file is removed.
    pub(super) temp: Option<PathBuf>,
}

impl<'a> Agreement<'a> {
    /// The group's agreement on writing `path`, once every rank found `def` valid.
    pub(super) fn validated(
        def: &DatasetDef,
        path: &'a Path,
        group: &'a dyn RankGroup,
    ) -> Result<Agreement<'a>, NcError> {
        let agree = Agreement {
            group,
            path,
            temp: None,
        };
        let valid = validate(def).map_err(|reason| NcError::Invalid {
            path: path.to_path_buf(),
            reason,
        });
        agree.on(valid, "validating the definition")?;
        Ok(agree)
    }

    /// `Ok` when every rank has the first rank's `digest` ([`header_digest`]) and `ok`.
    pub(super) fn same_definition(&self, digest: Vec<u8>, ok: bool) -> Result<(), NcError> {
        let same = ok && self.group.broadcast_bytes(digest.clone()) == digest;
        if self.group.all_true(same) {
            return Ok(());
        }
        Err(NcError::Invalid {
            path: self.path.to_path_buf(),
            reason: "the ranks of the group built different definitions (dimensions, \
                     variables, attributes or chunking)"
                .into(),
        })
    }

    /// `result` on every rank if every rank succeeded; otherwise this rank's own error,
    /// or [`NcError::Peer`] (with the failing rank's message on the first rank).
    pub(super) fn on<T>(&self, result: Result<T, NcError>, stage: &str) -> Result<T, NcError> {
        let result = result.map_err(|e| match (&self.temp, e) {
            (_, e @ NcError::Peer { .. }) | (None, e) => e,
            (Some(temp), e) => told_as_full_disk(e, temp),
        });
        let text = result.as_ref().err().map(|e| crate::error::chain(e));
        match self.group.all_ok(text.as_deref()) {
            Ok(()) => result,
            Err(failed) => Err(result.err().unwrap_or_else(|| NcError::Peer {
                path: self.path.to_path_buf(),
                stage: stage.to_string(),
                failed,
            })),
        }
    }
}
