//! Synthetic inputs of the 1D collections ([`crate::oned`]): the four time-series NetCDF
//! files ECCO's 1D script reads (`Pa_global.nc`, `GMSL.nc`, `GMSL_day.nc`,
//! `SBO_global.nc`), written as xarray writes them (float64 values, a float64 `time`
//! with CF units, each file in its own units to exercise the reader), with smooth
//! analytic series whose first records jump, as the real series do where ECCO blanks them.

use std::path::{Path, PathBuf};

use crate::ncio::{self, AttrValue, DatasetDef, NcError, VarData, VarDef};
use crate::oned::{OneD, OneDError, DATASETS};
use crate::time::{days_from_civil, Frequency, Instant};

/// Writes the four input files into `dir` with `days` days of hourly snapshots and daily
/// means and `months` monthly means; returns their paths.
pub fn write_inputs(dir: &Path, days: usize, months: usize) -> Result<Vec<PathBuf>, OneDError> {
    std::fs::create_dir_all(dir).map_err(|e| OneDError::Input {
        path: dir.to_path_buf(),
        what: format!("cannot create: {e}"),
    })?;
    let mut out = Vec::new();
    for d in DATASETS {
        let path = dir.join(d.input);
        ncio::write_atomic(series(&d, days, months)?, &path).map_err(|e: NcError| e)?;
        out.push(path);
    }
    Ok(out)
}

/// Record times (seconds since 1970) and the `time` units of dataset `d`'s input.
fn times(d: &OneD, days: usize, months: usize) -> (Vec<Instant>, &'static str, i64, f64) {
    let start = Instant(days_from_civil(1992, 1, 1) * 86400 + 12 * 3600);
    let midnight = Instant(days_from_civil(1992, 1, 1) * 86400);
    match d.freq {
        Frequency::AvgMon => {
            let t = (0..months as i64)
                .map(|m| {
                    let lo = midnight.add_months(m);
                    let hi = midnight.add_months(m + 1);
                    Instant((lo.0 + hi.0) / 2)
                })
                .collect();
            (t, "days since 1992-01-01", midnight.0, 86400.0)
        }
        Frequency::AvgDay => {
            let t = (0..days as i64)
                .map(|k| start.add_seconds(k * 86400))
                .collect();
            (t, "days since 1992-01-01 00:00:00", midnight.0, 86400.0)
        }
        _ if d.grouping == 0 => {
            let t = (0..days as i64 * 24)
                .map(|h| start.add_seconds(h * 3600))
                .collect();
            (t, "hours since 1992-01-01 12:00:00", start.0, 3600.0)
        }
        _ => {
            let t = (0..days as i64 * 24)
                .map(|h| start.add_seconds(h * 3600))
                .collect();
            (t, "seconds since 1992-01-01T12:00:00", start.0, 1.0)
        }
    }
}

fn series(d: &OneD, days: usize, months: usize) -> Result<DatasetDef, OneDError> {
    let (t, units, epoch, scale) = times(d, days, months);
    let n = t.len();
    let mut time = VarDef::new(
        "time",
        &["time"],
        VarData::F64(t.iter().map(|x| (x.0 - epoch) as f64 / scale).collect()),
    );
    time.attrs = vec![
        ("units".into(), units.into()),
        ("calendar".into(), "proleptic_gregorian".into()),
    ];
    let mut vars = vec![time];
    for (i, f) in d.fields()?.iter().enumerate() {
        let (base, amp) = match d.grouping {
            0 => (1.0107e5, 120.0),
            1 => (0.01 * i as f64, 0.02),
            _ => (1.0e25 * (i as f64 + 1.0), 3.0e23),
        };
        let values: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(k, x)| {
                let days = (x.0 - t[0].0) as f64 / 86400.0;
                let v = base
                    + amp * (2.0 * std::f64::consts::PI * (days / 365.25 + 0.1 * i as f64)).sin()
                    + amp * 0.01 * days;
                // The series start with a jump, which ECCO blanks.
                if k == 0 {
                    v + 50.0 * amp
                } else {
                    v
                }
            })
            .collect();
        let mut v = VarDef::new(f.as_str(), &["time"], VarData::F64(values));
        v.fill = Some(AttrValue::F64(f64::NAN));
        vars.push(v);
    }
    Ok(DatasetDef {
        dims: vec![("time".into(), n)],
        vars,
        global_attrs: vec![("title".into(), format!("synthetic {}", d.input).into())],
    })
}
