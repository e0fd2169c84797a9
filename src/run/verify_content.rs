//! `edp verify --content`: re-opens each local granule and checks what the manifest's
//! sizes and checksums cannot: that its layout is the one its grouping prescribes, that
//! no NaN hides outside the fill value, that values lie within `valid_min`/`valid_max`,
//! and that `time`/`time_bnds` agree with the date in the file name.

use std::path::Path;

use crate::metadata::{MetadataSet, Product};
use crate::ncio::{AttrValue, DType, NcReader};
use crate::tasks::GranuleName;
use crate::time::{Frequency, Instant};

/// The dimensions a granule of `product` has (`is_3d` adds the vertical ones), as the
/// granule builders write them.
fn expected_dims(product: Product, is_3d: bool) -> Vec<&'static str> {
    match (product, is_3d) {
        (Product::Native, false) => vec!["i", "i_g", "j", "j_g", "tile", "time", "nv", "nb"],
        (Product::Native, true) => vec![
            "i", "i_g", "j", "j_g", "k", "k_u", "k_l", "k_p1", "tile", "time", "nv", "nb",
        ],
        (Product::Latlon, false) => vec!["time", "latitude", "longitude", "nv"],
        (Product::Latlon, true) => vec!["time", "Z", "latitude", "longitude", "nv"],
    }
}

/// Everything wrong with the content of the granule at `path` (`granule` is its
/// manifest name); empty when it passes. `metadata` gives the groupings' fields;
/// `recorded_missing` are those the run recorded it was made without (`missing_fields`),
/// whose absence is the run's policy, not a fault.
pub fn check(
    path: &Path,
    granule: &str,
    recorded_missing: &[String],
    metadata: &MetadataSet,
) -> Vec<String> {
    if let Some(d) = crate::oned::OneD::from_granule(granule) {
        return super::verify_oned::check(&d, path);
    }
    let mut out = Vec::new();
    let name = match GranuleName::parse(granule) {
        Ok(n) => n,
        Err(e) => return vec![crate::error::chain(&e)],
    };
    let nc = match NcReader::open(path) {
        Ok(nc) => nc,
        Err(e) => return vec![crate::error::chain(&e)],
    };
    // (a) layout: the grouping's fields and the product's dimensions.
    let vars = nc.var_names();
    let dims: Vec<String> = nc.dims().into_iter().map(|(d, _)| d).collect();
    let grouping = metadata.grouping_named(name.product, &name.prefix);
    let is_3d = match grouping {
        Some(g) => g.is_3d(),
        None => dims.iter().any(|d| d == "k" || d == "Z"),
    };
    match grouping {
        Some(g) => {
            for f in &g.fields {
                let f = g.output_name(f);
                if !vars.iter().any(|v| v == f) && !recorded_missing.iter().any(|m| m == f) {
                    out.push(format!(
                        "variable {f} of grouping {} is missing",
                        g.filename
                    ));
                }
            }
        }
        None if name.freq != Frequency::Ti => out.push(format!(
            "no {} grouping {} in the metadata set",
            name.product.name(),
            name.prefix
        )),
        None => {}
    }
    let mut want = expected_dims(name.product, is_3d);
    if name.freq == Frequency::Ti {
        want.retain(|d| *d != "time");
    }
    check_dims(&dims, &want, &mut out);
    // (b), (c): floats hold no NaN, and values other than the fill lie within the
    // valid range.
    check_values(&nc, &vars, &mut out);
    // (d) time against the file name's date.
    if name.freq != Frequency::Ti {
        if let Err(e) = check_time(&nc, &name) {
            out.push(e);
        }
    }
    out
}

/// (a) of a granule's layout: the dimensions `want` are there and no others.
pub(super) fn check_dims(dims: &[String], want: &[&str], out: &mut Vec<String>) {
    for d in want {
        if !dims.iter().any(|x| x == d) {
            out.push(format!("dimension {d} is missing"));
        }
    }
    for d in dims {
        if !want.contains(&d.as_str()) {
            out.push(format!("unexpected dimension {d}"));
        }
    }
}

/// (b), (c) of a granule's values: floats hold no NaN, and values other than the fill
/// lie within the variable's valid range.
pub(super) fn check_values(nc: &NcReader, vars: &[String], out: &mut Vec<String>) {
    for v in vars {
        if !matches!(nc.var_type(v), Ok(DType::F32 | DType::F64)) {
            continue;
        }
        let attrs = nc.var_attrs(v).unwrap_or_default();
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, a)| a.as_f64())
        };
        let fill = get("_FillValue");
        let data = match nc.read_as_f64(v) {
            Ok(d) => d,
            Err(e) => {
                out.push(format!("variable {v}: {}", crate::error::chain(&e)));
                continue;
            }
        };
        let nan = data.iter().filter(|x| x.is_nan()).count();
        if nan > 0 {
            out.push(format!("variable {v}: {nan} NaN value(s)"));
        }
        let (lo, hi) = (get("valid_min"), get("valid_max"));
        if lo.is_none() && hi.is_none() {
            continue;
        }
        let outside = data
            .iter()
            .filter(|x| !x.is_nan() && Some(**x) != fill)
            .filter(|x| lo.is_some_and(|l| **x < l) || hi.is_some_and(|h| **x > h))
            .count();
        if outside > 0 {
            out.push(format!(
                "variable {v}: {outside} value(s) outside valid_min {} .. valid_max {}",
                lo.map_or("-".into(), |l| l.to_string()),
                hi.map_or("-".into(), |h| h.to_string())
            ));
        }
    }
}

/// `time` is the centre of `time_bnds`, and the bounds give the file name's date by
/// the rules the task list uses ([`crate::time::ModelClock::coverage`]).
fn check_time(nc: &NcReader, name: &GranuleName) -> Result<(), String> {
    let units = nc
        .var_attrs("time")
        .map_err(|e| format!("time: {}", crate::error::chain(&e)))?
        .into_iter()
        .find_map(|(k, a)| match a {
            AttrValue::Str(s) if k == "units" => Some(s),
            _ => None,
        })
        .ok_or("time has no units")?;
    let origin = units
        .strip_prefix("hours since ")
        .and_then(|s| Instant::parse(s).ok())
        .ok_or_else(|| format!("time units {units:?} are not 'hours since <date>'"))?;
    let read = |v: &str| {
        nc.read_as_f64(v)
            .map_err(|e| format!("{v}: {}", crate::error::chain(&e)))
    };
    let (time, bnds) = (read("time")?, read("time_bnds")?);
    let (&[t], &[b0, b1]) = (time.as_slice(), bnds.as_slice()) else {
        return Err(format!(
            "time has {} value(s) and time_bnds {}, want 1 and 2",
            time.len(),
            bnds.len()
        ));
    };
    let at = |h: f64| origin.add_seconds((h * 3600.0).round() as i64);
    let (start, end, centre) = (at(b0), at(b1), at(t));
    if start > end || (centre.0 - (start.0 + (end.0 - start.0) / 2)).abs() > 1800 {
        return Err(format!(
            "time {} is not the centre of time_bnds {} .. {}",
            centre.iso(),
            start.iso(),
            end.iso()
        ));
    }
    let ymd = |t: Instant| {
        let c = t.civil();
        format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
    };
    let (ok, period_ok) = match name.freq {
        Frequency::Snap => {
            let c = end.civil();
            let d = format!("{}T{:02}{:02}{:02}", ymd(end), c.hour, c.minute, c.second);
            (d == name.date, start == end)
        }
        Frequency::AvgDay => {
            // Either daily-date convention (`crate::time::DailyDate`) names a valid granule.
            let dates = [ymd(end.add_seconds(-1)), ymd(end)];
            (
                dates.contains(&name.date),
                end.0 > start.0 && end.0 - start.0 <= 86400,
            )
        }
        Frequency::AvgMon => {
            let c = centre.civil();
            (
                format!("{:04}-{:02}", c.year, c.month) == name.date,
                end.0 > start.0 && end.0 - start.0 <= 31 * 86400,
            )
        }
        Frequency::Ti => (true, true),
    };
    if !ok || !period_ok {
        return Err(format!(
            "time {} (bounds {} .. {}) does not match the {} date {} of the file name",
            centre.iso(),
            start.iso(),
            end.iso(),
            name.freq.output_token(),
            name.date
        ));
    }
    Ok(())
}
