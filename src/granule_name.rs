//! What a granule's file name says (grouping, period, date, release, product, label):
//! parsed where a granule is named (tasks), built, checked against metadata or found in
//! a destination, so it sits below all of them.

use crate::metadata::Product;
use crate::time::Frequency;

/// A granule file name that is not one EDP makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("granule name '{0}' is not of the form <GROUPING>_<mon_mean|day_mean|snap>_<date>_ECCO_<release>_<native|latlon>_<label>.nc (or <GROUPING>_ECCO_<release>_<native|latlon>_<label>.nc for a time-invariant one)")]
pub struct BadGranuleName(pub String);

/// What a granule file name says: `<prefix>_<period>_<date>_ECCO_<version>_<grid>_<label>.nc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GranuleName {
    pub prefix: String,
    pub freq: Frequency,
    pub date: String,
    pub version: String,
    pub product: Product,
    pub label: String,
}

impl GranuleName {
    /// Parses a granule path's file name as EDP's `ECCOGranuleFilestr` does: the period
    /// is the first `_snap`, `_day_mean` or `_mon_mean` (grouping names may hold `_`).
    pub fn parse(granule: &str) -> Result<GranuleName, BadGranuleName> {
        let file = granule.rsplit(['/', '\\']).next().unwrap_or(granule);
        let bad = || BadGranuleName(file.to_string());
        let stem = file.strip_suffix(".nc").ok_or_else(bad)?;
        let period = [
            (Frequency::Snap, "_snap_"),
            (Frequency::AvgDay, "_day_mean_"),
            (Frequency::AvgMon, "_mon_mean_"),
        ]
        .iter()
        .filter_map(|(f, t)| stem.find(t).map(|p| (p, *f, *t)))
        .min_by_key(|(p, _, _)| *p);
        let (prefix, freq, date, rest) = match period {
            Some((pos, freq, tok)) => {
                let (date, rest) = stem[pos + tok.len()..]
                    .split_once("_ECCO_")
                    .ok_or_else(bad)?;
                if date.is_empty() {
                    return Err(bad());
                }
                (&stem[..pos], freq, date, rest)
            }
            // Time-invariant granules have neither period nor date:
            // `<GROUPING>_ECCO_<version>_<grid>_<label>.nc`.
            None => {
                let (prefix, rest) = stem.split_once("_ECCO_").ok_or_else(bad)?;
                (prefix, Frequency::Ti, "", rest)
            }
        };
        let mut parts = rest.splitn(3, '_');
        let (version, grid, label) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        let product = Product::parse(grid).ok_or_else(bad)?;
        if prefix.is_empty() {
            return Err(bad());
        }
        Ok(GranuleName {
            prefix: prefix.into(),
            freq,
            date: date.into(),
            version: version.into(),
            product,
            label: label.into(),
        })
    }

    pub fn file_name(&self) -> String {
        if self.freq == Frequency::Ti {
            return format!(
                "{}_ECCO_{}_{}_{}.nc",
                self.prefix,
                self.version,
                self.product.name(),
                self.label
            );
        }
        format!(
            "{}_{}_{}_ECCO_{}_{}_{}.nc",
            self.prefix,
            self.freq.output_token(),
            self.date,
            self.version,
            self.product.name(),
            self.label
        )
    }
}
