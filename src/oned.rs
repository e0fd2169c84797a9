//! The four 1D (global time series) collections of ECCO V4r4, one granule each holding
//! the whole record, made as ECCO-ACCESS `eccov4r4_gen_for_podaac_1D.py` made them:
//!
//! | granule | grouping | input |
//! |---|---|---|
//! | `GLOBAL_MEAN_ATM_SURFACE_PRES_snap_ECCO_V4r4_1D.nc` | 0 | `Pa_global.nc` |
//! | `GLOBAL_MEAN_SEA_LEVEL_mon_mean_ECCO_V4r4_1D.nc` | 1 | `GMSL.nc` |
//! | `GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc` | 1 | `GMSL_day.nc` |
//! | `SBO_CORE_PRODUCTS_snap_ECCO_V4r4_1D.nc` | 2 | `SBO_global.nc` |
//!
//! The inputs are the time-series NetCDF files that script reads (a `time` coordinate
//! with CF units and one variable per field of the grouping). Their records are kept as
//! they are (the script's resampling of the pressure series is computed and discarded
//! there, so it is not done here); the records the script blanks become fill values
//! (the first two pressure records; the first daily GMSL record, where the barystatic
//! term starts with a discontinuity; the first SBO record of the angular-momentum,
//! centre-of-mass and mass terms), and the GMSL terms are made anomalies about their
//! record mean. Attributes come from the 1D metadata (variables, `time`/`time_bnds`,
//! global templates for all and 1D datasets) and the PO.DAAC row (DOI, CMR link, title,
//! summary); the time coverage is the release's, as the script sets it.
//!
//! This module says what the four are (names, fields, inputs, PO.DAAC rows), which the
//! jobs and tasks need; [`crate::granule::oned`] builds their granules.

use std::path::PathBuf;

use serde_json::Value;

use crate::metadata::Record;
use crate::ncio::NcError;
use crate::time::Frequency;

const GROUPINGS: &str = include_str!("../metadata/V4r4/ECCOv4r4_groupings_for_1D_datasets.json");
const PODAAC: &str = include_str!("../metadata/V4r4/PODAAC_datasets-revised_20210226.5.csv");

/// One of the four 1D datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneD {
    /// Index into the 1D groupings.
    pub grouping: usize,
    pub freq: Frequency,
    /// The time-series NetCDF file it is made from.
    pub input: &'static str,
}

/// The four datasets V4r4 publishes.
pub const DATASETS: [OneD; 4] = [
    OneD {
        grouping: 0,
        freq: Frequency::Snap,
        input: "Pa_global.nc",
    },
    OneD {
        grouping: 1,
        freq: Frequency::AvgDay,
        input: "GMSL_day.nc",
    },
    OneD {
        grouping: 1,
        freq: Frequency::AvgMon,
        input: "GMSL.nc",
    },
    OneD {
        grouping: 2,
        freq: Frequency::Snap,
        input: "SBO_global.nc",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum OneDError {
    #[error("the embedded 1D metadata is not valid: {0}")]
    Metadata(String),
    #[error("no 1D dataset of grouping {grouping} at frequency {freq}")]
    Unknown { grouping: usize, freq: String },
    #[error(transparent)]
    Nc(#[from] NcError),
    #[error("{path:?}: {what}")]
    Input { path: PathBuf, what: String },
}

pub(crate) fn records(text: &str, what: &str) -> Result<Vec<Record>, OneDError> {
    serde_json::from_str(text).map_err(|e| OneDError::Metadata(format!("{what}: {e}")))
}

/// The 1D groupings' `filename`s, in the groupings file's order (their job ids).
pub fn grouping_names() -> Result<Vec<String>, OneDError> {
    Ok(records(GROUPINGS, "groupings")?
        .iter()
        .map(|r| text(r, "filename"))
        .collect())
}

pub(crate) fn text(r: &Record, k: &str) -> String {
    r.get(k)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

impl OneD {
    /// The dataset of a grouping and frequency, if V4r4 publishes one.
    pub fn find(grouping: usize, freq: Frequency) -> Result<OneD, OneDError> {
        DATASETS
            .into_iter()
            .find(|d| d.grouping == grouping && d.freq == freq)
            .ok_or(OneDError::Unknown {
                grouping,
                freq: freq.job_name().to_string(),
            })
    }

    pub(crate) fn grouping_record(&self) -> Result<Record, OneDError> {
        records(GROUPINGS, "groupings")?
            .into_iter()
            .nth(self.grouping)
            .ok_or_else(|| OneDError::Metadata(format!("no 1D grouping {}", self.grouping)))
    }

    /// The grouping's `filename` (`GLOBAL_MEAN_SEA_LEVEL`, …).
    pub fn grouping_name(&self) -> Result<String, OneDError> {
        Ok(text(&self.grouping_record()?, "filename"))
    }

    /// The output variables, in the grouping's order.
    pub fn fields(&self) -> Result<Vec<String>, OneDError> {
        Ok(text(&self.grouping_record()?, "fields")
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect())
    }

    fn period(&self) -> &'static str {
        match self.freq {
            Frequency::AvgDay => "day_mean",
            Frequency::AvgMon => "mon_mean",
            _ => "snap",
        }
    }

    /// `GROUPING_<snap|day_mean|mon_mean>_ECCO_V4r4_1D.nc`.
    pub fn file_name(&self) -> Result<String, OneDError> {
        Ok(format!(
            "{}_{}_ECCO_V4r4_1D.nc",
            self.grouping_name()?,
            self.period()
        ))
    }

    /// Where the granule goes below an output root (EDP's layout, product `1D`).
    pub fn relative_path(&self) -> Result<String, OneDError> {
        Ok(format!(
            "V4r4/1D/{}/{}/{}",
            self.freq.output_token(),
            self.grouping_name()?,
            self.file_name()?
        ))
    }

    /// The dataset whose granule `granule` (a path or file name) is, if it is one of the four.
    pub fn from_granule(granule: &str) -> Option<OneD> {
        let file = granule.rsplit(['/', '\\']).next().unwrap_or(granule);
        DATASETS
            .into_iter()
            .find(|d| d.file_name().is_ok_and(|n| n == file))
    }

    /// The grouping's human name (`name`).
    pub fn name(&self) -> Result<String, OneDError> {
        Ok(text(&self.grouping_record()?, "name"))
    }

    /// The grouping's `comment`, if it has one.
    pub fn comment(&self) -> Result<Option<String>, OneDError> {
        Ok(self
            .grouping_record()?
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// The collection's description in the PO.DAAC table (the granule's `summary`).
    pub fn summary(&self) -> Result<String, OneDError> {
        Ok(podaac_row(&self.file_name()?)?.3)
    }

    /// The records the script blanks, per field.
    pub(crate) fn blanked(&self, field: &str) -> usize {
        match (self.grouping, self.freq) {
            (0, _) => 2,
            (1, Frequency::AvgDay) => 1,
            (2, _) if ["com", "amp", "mass"].iter().any(|s| field.contains(s)) => 1,
            _ => 0,
        }
    }
}

/// The PO.DAAC row of a file: (short name, long name, DOI id, description).
pub(crate) fn podaac_row(file: &str) -> Result<(String, String, String, String), OneDError> {
    let mut rdr = csv::Reader::from_reader(PODAAC.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| OneDError::Metadata(e.to_string()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| OneDError::Metadata(format!("PO.DAAC table has no {name}")))
    };
    let (short, long, file_col, id, desc) = (
        col("DATASET.SHORT_NAME")?,
        col("DATASET.LONG_NAME")?,
        col("DATASET.FILENAME")?,
        col("DATASET.PERSISTENT_ID")?,
        col("DATASET.DESCRIPTION")?,
    );
    for row in rdr.records() {
        let row = row.map_err(|e| OneDError::Metadata(e.to_string()))?;
        if row.get(file_col) == Some(file) {
            let get = |i: usize| row.get(i).unwrap_or("").trim().to_string();
            return Ok((get(short), get(long), get(id), get(desc)));
        }
    }
    Err(OneDError::Metadata(format!("no PO.DAAC row for {file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rows_of_the_four_datasets() {
        let names: Vec<String> = DATASETS.iter().map(|d| d.file_name().unwrap()).collect();
        assert_eq!(
            names,
            [
                "GLOBAL_MEAN_ATM_SURFACE_PRES_snap_ECCO_V4r4_1D.nc",
                "GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc",
                "GLOBAL_MEAN_SEA_LEVEL_mon_mean_ECCO_V4r4_1D.nc",
                "SBO_CORE_PRODUCTS_snap_ECCO_V4r4_1D.nc",
            ]
        );
        let ids: Vec<String> = names.iter().map(|n| podaac_row(n).unwrap().2).collect();
        assert_eq!(
            ids,
            [
                "PODAAC-ECTSS-MAP44",
                "PODAAC-ECTSD-MSL44",
                "PODAAC-ECTSM-MSL44",
                "PODAAC-ECTSS-SBO44"
            ]
        );
        assert_eq!(DATASETS[3].fields().unwrap().len(), 26);
        assert_eq!(DATASETS[3].blanked("xcom_fw"), 1);
        assert_eq!(DATASETS[3].blanked("sboarea"), 0);
    }
}
