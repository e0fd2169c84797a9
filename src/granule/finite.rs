//! Non-finite values (NaN, ±Inf) in wet cells of a model field: a broken input, not a
//! hole. By default the task fails naming the file, the variable, the count and the
//! first (tile, j, i, k); with `--nonfinite fill` they are written as the fill value,
//! with a warning and the count in the manifest record. Dry cells are fill anyway.

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
    /// Counts the wet (`hfac > 0`), non-finite values of level `k` (13·n² values in
    /// tile order).
    pub fn scan_level(n: usize, k: usize, values: &[f32], hfac: &[f32]) -> NonFinite {
        let mut nf = NonFinite::default();
        for (p, (v, h)) in values.iter().zip(hfac).enumerate() {
            if *h > 0.0 && !v.is_finite() {
                nf.count += 1;
                if nf.first.is_none() {
                    nf.first = Some([p / (n * n), (p / n) % n, p % n, k]);
                }
            }
        }
        nf
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_wet_non_finite_values_and_places_the_first() {
        let n = 2;
        let mut v = vec![1f32; 13 * n * n];
        let mut h = vec![1f32; 13 * n * n];
        v[0] = f32::NAN;
        h[0] = 0.0; // dry: not counted
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
}
