//! Building the 1D granules (see [`crate::oned`] for the four collections): the
//! time-series input read, its records blanked and made anomalies as ECCO-ACCESS's
//! script did, the attributes from the 1D metadata and the PO.DAAC row.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::attrs::{gcmd_keywords, get_text, merge_variable_record, set, Attrs};
use crate::metadata::{record_named, Record};
use crate::ncio::{self, AttrValue, Compression, DatasetDef, NcReader, VarData, VarDef};
use crate::oned::{podaac_row, records, text, OneD, OneDError};
use crate::tasks::Task;
use crate::time::{Frequency, Instant};

const VARIABLES: &str =
    include_str!("../../metadata/V4r4/ECCOv4r4_variable_metadata_for_1D_datasets.json");
const GENERAL_VARIABLES: &str = include_str!("../../metadata/V4r4/ECCOv4r4_variable_metadata.json");
const GLOBAL_ALL: &str =
    include_str!("../../metadata/V4r4/ECCOv4r4_global_metadata_for_all_datasets.json");
const GLOBAL_1D: &str =
    include_str!("../../metadata/V4r4/ECCOv4r4_global_metadata_for_1D_datasets.json");
const COORDINATES: &str =
    include_str!("../../metadata/V4r4/ECCOv4r4_coordinate_metadata_for_1D_datasets.json");

/// netCDF's default float fill, as the script's encoding (`nc4.default_fillvals['f4']`).
const FILL: f32 = super::FILL_F32;

/// The granule of a 1D task from its (local) input, `None` for any other task; `now`
/// is the creation time.
pub fn of_task(task: &Task, now: &str) -> Option<Result<DatasetDef, OneDError>> {
    let d = match crate::tasks::oned::dataset_of(task) {
        Ok(Some(d)) => d,
        Ok(None) => return None,
        Err(what) => {
            return Some(Err(OneDError::Input {
                path: PathBuf::from(&task.granule),
                what,
            }))
        }
    };
    Some(of_task_dataset(&d, task, now))
}

/// The granule of `d` from the one time-series file `task` names, with the fields it
/// names.
fn of_task_dataset(d: &OneD, task: &Task, now: &str) -> Result<DatasetDef, OneDError> {
    let bad = |what: String| OneDError::Input {
        path: PathBuf::from(&task.granule),
        what,
    };
    let mut inputs: Vec<&str> = task
        .variables
        .values()
        .flatten()
        .map(|[data, _]| data.as_str())
        .collect();
    inputs.sort_unstable();
    inputs.dedup();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(bad("the task names no input".into())),
        more => {
            return Err(bad(format!(
                "the fields of a 1D task come from one time-series file, not {}",
                more.join(", ")
            )))
        }
    };
    let fields: Vec<String> = task.variables.keys().cloned().collect();
    build_fields(d, Path::new(input), &fields, now)
}

/// Seconds per unit of a CF `UNIT since DATE` and the epoch.
fn time_units(units: &str) -> Option<(f64, Instant)> {
    let (unit, since) = units.split_once(" since ")?;
    let scale = match unit.trim() {
        "seconds" | "second" | "s" => 1.0,
        "minutes" | "minute" => 60.0,
        "hours" | "hour" | "h" => 3600.0,
        "days" | "day" | "d" => 86400.0,
        _ => return None,
    };
    let since = since.trim();
    let since = if since.len() == 10 {
        format!("{since}T00:00:00")
    } else {
        since.to_string()
    };
    Some((scale, Instant::parse(&since).ok()?))
}

/// Builds the granule of `d` from its input file `input`; `now` is the creation time.
pub fn build(d: &OneD, input: &Path, now: &str) -> Result<DatasetDef, OneDError> {
    build_fields(d, input, &d.fields()?, now)
}

/// [`build`] with only `fields` (in the grouping's order; each must be one of its
/// fields), as a task that lacks some of them asks.
pub fn build_fields(
    d: &OneD,
    input: &Path,
    fields: &[String],
    now: &str,
) -> Result<DatasetDef, OneDError> {
    let all = d.fields()?;
    if let Some(f) = fields.iter().find(|f| !all.contains(f)) {
        return Err(OneDError::Input {
            path: input.to_path_buf(),
            what: format!(
                "{f} is not a field of the 1D grouping {} ({})",
                d.grouping_name()?,
                all.join(", ")
            ),
        });
    }
    let fields: Vec<String> = all.into_iter().filter(|f| fields.contains(f)).collect();
    let r = NcReader::open(input)?;
    let times = read_times(&r, input)?;
    let coords = records(COORDINATES, "1D coordinates")?;
    let (mut vars, dims) = time_variables(d, &times, &coords)?;
    let general = records(GENERAL_VARIABLES, "variables")?;
    let oned = records(VARIABLES, "1D variables")?;
    let mut keywords: Vec<String> = Vec::new();
    for f in &fields {
        vars.push(field_variable(
            d,
            &r,
            input,
            f,
            times.len(),
            [&general, &oned],
            &mut keywords,
        )?);
    }
    let mut g = global_attributes(d, now, keywords)?;
    g.sort_by_key(|(k, _)| k.to_lowercase());
    Ok(DatasetDef {
        dims,
        vars,
        global_attrs: g,
    })
}

/// The input's `time` axis as instants (its `units` are UNIT since DATE).
fn read_times(r: &NcReader, input: &Path) -> Result<Vec<Instant>, OneDError> {
    let bad = |what: String| OneDError::Input {
        path: input.to_path_buf(),
        what,
    };
    let units = get_text(&r.var_attrs("time")?, "units")
        .ok_or_else(|| bad("`time` has no units".into()))?;
    let (scale, epoch) = time_units(&units)
        .ok_or_else(|| bad(format!("`time` units {units:?} are not UNIT since DATE")))?;
    let times: Vec<Instant> = r
        .read_as_f64("time")?
        .iter()
        .map(|t| Instant(epoch.0 + (t * scale).round() as i64))
        .collect();
    if times.is_empty() {
        return Err(bad("`time` is empty".into()));
    }
    Ok(times)
}

/// A dataset's dimensions, named with their lengths.
type Dims = Vec<(String, usize)>;

/// `time` (int32 hours since the coordinate metadata's epoch) and, for means,
/// `time_bnds`, with the dimensions they need.
fn time_variables(
    d: &OneD,
    times: &[Instant],
    coords: &[Record],
) -> Result<(Vec<VarDef>, Dims), OneDError> {
    let n = times.len();
    let time_record =
        record_named(coords, "time").ok_or_else(|| OneDError::Metadata("no time record".into()))?;
    let time_units_text = text(time_record, "units");
    let (_, t0) = time_units(&time_units_text)
        .ok_or_else(|| OneDError::Metadata(format!("time units {time_units_text:?}")))?;
    let hours = |t: Instant| ((t.0 - t0.0) as f64 / 3600.0).round() as i32;
    let mean = d.freq != Frequency::Snap;
    let mut time = VarDef::new(
        "time",
        &["time"],
        VarData::I32(times.iter().map(|t| hours(*t)).collect()),
    );
    merge_variable_record(&mut time.attrs, time_record);
    set(
        &mut time.attrs,
        "long_name",
        (if mean {
            "center time of averaging period"
        } else {
            "snapshot time"
        })
        .into(),
    );
    if !mean {
        time.attrs.retain(|(k, _)| k != "bounds");
    }
    // As granule::compliance does for the other granules: say what the time value is.
    set(
        &mut time.attrs,
        "comment",
        (if mean {
            "Center time of the averaging period; time_bnds holds its start and end."
        } else {
            "Time of the snapshot."
        })
        .into(),
    );
    let mut vars = vec![time];
    let mut dims = vec![("time".to_string(), n)];
    if mean {
        dims.push(("nv".to_string(), 2));
        let bounds: Vec<i32> = times
            .iter()
            .flat_map(|t| {
                let (lo, hi) = match d.freq {
                    Frequency::AvgDay => {
                        let lo = t.midnight();
                        (lo, lo.add_seconds(86400))
                    }
                    _ => {
                        let c = t.civil();
                        let lo = Instant(crate::time::days_from_civil(c.year, c.month, 1) * 86400);
                        (lo, lo.add_months(1))
                    }
                };
                [hours(lo), hours(hi)]
            })
            .collect();
        let mut tb = VarDef::new("time_bnds", &["time", "nv"], VarData::I32(bounds));
        if let Some(rec) = record_named(coords, "time_bnds") {
            merge_variable_record(&mut tb.attrs, rec);
        }
        // As xarray wrote ECCO's granules (and EDP's): a bounds variable inherits its
        // parent's units (CF 7.1), so its own equal ones are dropped.
        tb.attrs.retain(|(k, _)| k != "units");
        vars.push(tb);
    }
    Ok((vars, dims))
}

/// The variable of field `f` (`n` values on `time`): the first records blanked where
/// the series starts with a discontinuity, the record mean removed from the GMSL terms,
/// the metadata's attributes (`records`: general, then 1D), its GCMD keywords added to
/// `keywords`.
fn field_variable(
    d: &OneD,
    r: &NcReader,
    input: &Path,
    f: &str,
    n: usize,
    records: [&[Record]; 2],
    keywords: &mut Vec<String>,
) -> Result<VarDef, OneDError> {
    let bad = |what: String| OneDError::Input {
        path: input.to_path_buf(),
        what,
    };
    let zip = Compression {
        deflate_level: 5,
        shuffle: true,
    };
    let mut values = r
        .read_as_f64(f)
        .map_err(|e| bad(format!("field {f}: {}", crate::error::chain(&e))))?;
    if values.len() != n {
        return Err(bad(format!("{f} has {} values, `time` {n}", values.len())));
    }
    for v in values.iter_mut().take(d.blanked(f)) {
        *v = f64::NAN;
    }
    if d.grouping == 1 {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let m = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
        values.iter_mut().for_each(|v| *v -= m);
    }
    let data: Vec<f32> = values
        .iter()
        .map(|v| if v.is_finite() { *v as f32 } else { FILL })
        .collect();
    let mut v = VarDef::new(f, &["time"], VarData::F32(data));
    for rs in records {
        if let Some(rec) = record_named(rs, f) {
            merge_variable_record(&mut v.attrs, rec);
            keywords.extend(gcmd_keywords(rec));
        }
    }
    // The metadata's empty standard_name (no CF name for these) is not written:
    // CF allows no empty one.
    v.attrs
        .retain(|(k, a)| !(k == "standard_name" && *a == AttrValue::Str(String::new())));
    v.attrs.push(("valid_min".into(), AttrValue::F32(f32::NAN)));
    v.attrs.push(("valid_max".into(), AttrValue::F32(f32::NAN)));
    v.attrs.push(("coordinates".into(), "time".into()));
    v.fill = Some(AttrValue::F32(FILL));
    v.valid_range = true;
    v.compression = Some(zip);
    v.chunks = Some(vec![n]);
    Ok(v)
}

/// The global attributes: the templates for all and for 1D datasets, the grouping's
/// comment, the PO.DAAC row's identity, the release's coverage, `keywords` merged.
fn global_attributes(d: &OneD, now: &str, mut keywords: Vec<String>) -> Result<Attrs, OneDError> {
    let mut g: Attrs = Vec::new();
    for rec in records(GLOBAL_ALL, "global")?
        .iter()
        .chain(&records(GLOBAL_1D, "1D global")?)
    {
        if let Some(dims) = rec.get("grid_dimension").and_then(Value::as_str) {
            if !dims.split_whitespace().any(|x| x == "1D") {
                continue;
            }
        }
        if let (Some(name), Some(v)) = (
            rec.get("name").and_then(Value::as_str),
            crate::granule::attrs::template_value(rec),
        ) {
            set(&mut g, name, v);
        }
    }
    let file = d.file_name()?;
    let (short, long, pid, summary) = podaac_row(&file)?;
    let doi = pid.replace("PODAAC-", "10.5067/");
    let clock = crate::time::ModelClock::v4r4();
    if let Some(c) = d.grouping_record()?.get("comment").and_then(Value::as_str) {
        let base = get_text(&g, "comment").unwrap_or_default();
        set(&mut g, "comment", format!("{base} {c}").trim().into());
    }
    let template_keywords = get_text(&g, "keywords").unwrap_or_default();
    keywords.extend(
        template_keywords
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty()),
    );
    keywords.sort();
    keywords.dedup();
    for (k, v) in [
        ("time_coverage_start", clock.start.iso()),
        ("time_coverage_end", clock.end.iso()),
        ("date_created", now.to_string()),
        ("date_modified", now.to_string()),
        ("date_metadata_modified", now.to_string()),
        ("date_issued", now.to_string()),
        ("time_coverage_duration", d.freq.duration().to_string()),
        ("time_coverage_resolution", d.freq.duration().to_string()),
        ("product_name", file.clone()),
        ("id", doi.clone()),
        ("identifier_product_doi", doi.clone()),
        ("identifier_product_doi_authority", "https://doi.org".into()),
        (
            "metadata_link",
            format!("https://cmr.earthdata.nasa.gov/search/collections.umm_json?ShortName={short}"),
        ),
        ("title", long),
        ("summary", summary),
        ("keywords", keywords.join(", ")),
        ("uuid", uuid::Uuid::new_v4().to_string()),
        (
            "coordinates_comment",
            "Note: the global 'coordinates' attribute describes auxiliary coordinates.".into(),
        ),
    ] {
        set(&mut g, k, v.into());
    }
    Ok(g)
}

/// Makes the granule of `d` from `input_dir/<input>` under `out_root` (EDP's layout);
/// returns its path.
pub fn write(d: &OneD, input_dir: &Path, out_root: &Path) -> Result<PathBuf, OneDError> {
    let now = super::now_utc();
    let def = build(d, &input_dir.join(d.input), &now)?;
    let path = out_root.join(d.relative_path()?);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| OneDError::Input {
            path: dir.to_path_buf(),
            what: format!("cannot create: {e}"),
        })?;
    }
    ncio::write_atomic(def, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cf_time_units_give_scale_and_epoch() {
        let (s, e) = time_units("days since 1992-01-01").unwrap();
        assert_eq!((s, e.iso()), (86400.0, "1992-01-01T00:00:00".to_string()));
        let (s, e) = time_units("hours since 1992-01-01T12:00:00").unwrap();
        assert_eq!((s, e.iso()), (3600.0, "1992-01-01T12:00:00".to_string()));
        assert!(time_units("fortnights since 1992-01-01").is_none());
    }
}
