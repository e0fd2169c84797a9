//! Non-finite values (NaN, ±Inf) in wet cells of a model field: a broken input, not a
//! hole. By default the task fails naming the file, the variable, the count and the
//! first (tile, j, i, k); with `--nonfinite fill` they are written as the fill value,
//! with a warning and the count in the manifest record. Dry cells are fill anyway.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::GranuleError;

/// What to do with non-finite values in wet cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NonFinitePolicy {
    /// The task fails (the default: such a field is a broken input).
    #[default]
    Fail,
    /// Written as the fill value, with a warning and the count in the manifest.
    Fill,
}

/// Non-finite values at wet points of one field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NonFinite {
    pub count: u64,
    /// The first one in (k, tile, j, i) order, as (tile, j, i, k).
    pub first: Option<[usize; 4]>,
}

impl NonFinite {
    /// Counts the wet (`wet` not 0: [`crate::grid::Grid::wet_level`]), non-finite values
    /// of level `k` (13·n² values in tile order).
    pub fn scan_level(n: usize, k: usize, values: &[f32], wet: &[u8]) -> NonFinite {
        // Counted branch-free (vectorised: every level of every input goes through
        // here); the first one is looked for only when there is one.
        let bad = |(v, w): (&f32, &u8)| (*w != 0) & !v.is_finite();
        let count: u64 = values.iter().zip(wet).map(|p| u64::from(bad(p))).sum();
        let first = (count > 0)
            .then(|| values.iter().zip(wet).position(bad))
            .flatten()
            .map(|p| [p / (n * n), (p / n) % n, p % n, k]);
        NonFinite { count, first }
    }

    /// Adds the counts of a later level.
    pub fn then(self, later: NonFinite) -> NonFinite {
        NonFinite {
            count: self.count + later.count,
            first: self.first.or(later.first),
        }
    }

    /// Applies `policy`: an error naming `file` and `var`, or (fill) a warning and the
    /// count to record.
    pub fn apply(
        self,
        policy: NonFinitePolicy,
        file: &std::path::Path,
        var: &str,
    ) -> Result<u64, GranuleError> {
        let Some(first) = self.first else {
            return Ok(0);
        };
        match policy {
            NonFinitePolicy::Fail => Err(GranuleError::NonFinite {
                path: file.to_path_buf(),
                var: var.to_string(),
                count: self.count,
                first,
            }),
            NonFinitePolicy::Fill => {
                let [t, j, i, k] = first;
                log::warn!(
                    "{}: {} non-finite value(s) of {var} in wet cells written as fill (--nonfinite fill); first at tile {t}, j {j}, i {i}, k {k}",
                    file.display(),
                    self.count
                );
                Ok(self.count)
            }
        }
    }
}

/// Counts every level of a field again (the exact count and first of an error).
pub type Rescan = Box<dyn Fn() -> Result<NonFinite, GranuleError> + Send + Sync>;

/// The non-finite check of one input whose levels are read once, as they stream to
/// the writer: each level's scan is recorded when it is read, and with
/// [`NonFinitePolicy::Fail`] the first level that has one fails the write (the error
/// counts the whole field, from `rescan`). Recording a level again replaces it, so a
/// writer that produces a level twice counts it once.
pub struct StreamCheck {
    path: PathBuf,
    var: String,
    policy: NonFinitePolicy,
    levels: Mutex<Vec<Option<NonFinite>>>,
    rescan: Rescan,
}

impl StreamCheck {
    pub fn new(
        path: PathBuf,
        var: &str,
        policy: NonFinitePolicy,
        levels: usize,
        rescan: Rescan,
    ) -> Arc<StreamCheck> {
        Arc::new(StreamCheck {
            path,
            var: var.to_string(),
            policy,
            levels: Mutex::new(vec![None; levels]),
            rescan,
        })
    }

    /// Records the scan of level `k`; an error when the policy is to fail and it found
    /// a non-finite value.
    pub fn level(&self, k: usize, found: NonFinite) -> Result<(), GranuleError> {
        if found.count > 0 && self.policy == NonFinitePolicy::Fail {
            let whole = (self.rescan)()?;
            whole.apply(self.policy, &self.path, &self.var)?;
        }
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = levels.get_mut(k) {
            *slot = Some(found);
        }
        Ok(())
    }

    /// After the write: the non-finite values written as fill, with the warning
    /// [`NonFinite::apply`] gives (none under `Fail`: those failed the write).
    fn filled(&self) -> u64 {
        let levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let total = levels
            .iter()
            .flatten()
            .fold(NonFinite::default(), |a, b| a.then(*b));
        total
            .apply(self.policy, &self.path, &self.var)
            .unwrap_or(total.count)
    }
}

/// The non-finite values of a granule: those counted while it was built and those of
/// the inputs checked as they stream ([`StreamCheck`]), known once it is written.
#[derive(Default)]
pub struct Found {
    pub known: u64,
    pub streamed: Vec<Arc<StreamCheck>>,
}

impl Found {
    /// Written as fill, all fields together; call once, after the write succeeded.
    pub fn filled(&self) -> u64 {
        self.known + self.streamed.iter().map(|c| c.filled()).sum::<u64>()
    }

    /// Checks every streamed input whole, now (for a writer that does not produce
    /// every level in this process: a group of ranks writing one granule).
    pub fn scan_now(self) -> Result<Found, GranuleError> {
        let mut known = self.known;
        for c in &self.streamed {
            known += (c.rescan)()?.apply(c.policy, &c.path, &c.var)?;
        }
        Ok(Found {
            known,
            streamed: Vec::new(),
        })
    }
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Found {{ known: {}, streamed: {} inputs }}",
            self.known,
            self.streamed.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_wet_non_finite_values_and_places_the_first() {
        let n = 2;
        let mut v = vec![1f32; 13 * n * n];
        let mut h = vec![1u8; 13 * n * n];
        v[0] = f32::NAN;
        h[0] = 0; // dry: not counted
        v[4 * 3 + 2 + 1] = f32::INFINITY; // tile 3, j 1, i 1
        v[4 * 7] = f32::NEG_INFINITY; // tile 7, j 0, i 0
        let nf = NonFinite::scan_level(n, 5, &v, &h);
        assert_eq!(nf.count, 2);
        assert_eq!(nf.first, Some([3, 1, 1, 5]));
        let later = NonFinite::scan_level(n, 6, &v, &h);
        assert_eq!(nf.then(later).count, 4);
        assert_eq!(nf.then(later).first, Some([3, 1, 1, 5]));
        let err = nf
            .apply(
                NonFinitePolicy::Fail,
                std::path::Path::new("/x/T.data"),
                "THETA",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/x/T.data") && err.contains("THETA") && err.contains("2 non-finite"),
            "{err}"
        );
        assert!(err.contains("tile 3, j 1, i 1, k 5"), "{err}");
        assert_eq!(
            nf.apply(NonFinitePolicy::Fill, std::path::Path::new("/x"), "T")
                .unwrap(),
            2
        );
    }

    #[test]
    fn streamed_levels_count_once_and_fail_with_the_whole_field() {
        let one = NonFinite {
            count: 3,
            first: Some([1, 2, 3, 4]),
        };
        let whole = NonFinite {
            count: 7,
            first: Some([0, 0, 1, 2]),
        };
        let path = std::path::PathBuf::from("/x/T.data");
        let fill = StreamCheck::new(
            path.clone(),
            "T",
            NonFinitePolicy::Fill,
            5,
            Box::new(|| panic!("no rescan when filling")),
        );
        fill.level(4, one).unwrap();
        fill.level(4, one).unwrap(); // produced twice (the netCDF-only path)
        fill.level(0, NonFinite::default()).unwrap();
        let found = Found {
            known: 2,
            streamed: vec![fill],
        };
        assert_eq!(found.filled(), 5);

        let fail = StreamCheck::new(
            path,
            "T",
            NonFinitePolicy::Fail,
            5,
            Box::new(move || Ok(whole)),
        );
        fail.level(0, NonFinite::default()).unwrap();
        let err = fail.level(4, one).unwrap_err().to_string();
        assert!(
            err.contains("7 non-finite") && err.contains("tile 0, j 0, i 1, k 2"),
            "{err}"
        );
        let now = Found {
            known: 0,
            streamed: vec![fail],
        }
        .scan_now()
        .unwrap_err()
        .to_string();
        assert!(now.contains("7 non-finite"), "{now}");
    }
}
