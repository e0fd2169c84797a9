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

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::granule::attrs::{gcmd_keywords, get_text, merge_variable_record, set, Attrs};
use crate::metadata::{record_named, Record};
use crate::ncio::{self, AttrValue, Compression, DatasetDef, NcError, NcReader, VarData, VarDef};
use crate::time::{Frequency, Instant};

const VARIABLES: &str =
    include_str!("../metadata/V4r4/ECCOv4r4_variable_metadata_for_1D_datasets.json");
const GENERAL_VARIABLES: &str = include_str!("../metadata/V4r4/ECCOv4r4_variable_metadata.json");
const GLOBAL_ALL: &str =
    include_str!("../metadata/V4r4/ECCOv4r4_global_metadata_for_all_datasets.json");
const GLOBAL_1D: &str =
    include_str!("../metadata/V4r4/ECCOv4r4_global_metadata_for_1D_datasets.json");
const COORDINATES: &str =
    include_str!("../metadata/V4r4/ECCOv4r4_coordinate_metadata_for_1D_datasets.json");
const GROUPINGS: &str = include_str!("../metadata/V4r4/ECCOv4r4_groupings_for_1D_datasets.json");
const PODAAC: &str = include_str!("../metadata/V4r4/PODAAC_datasets-revised_20210226.5.csv");

/// netCDF's default float fill, as the script's encoding (`nc4.default_fillvals['f4']`).
const FILL: f32 = crate::granule::FILL_F32;

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

fn records(text: &str, what: &str) -> Result<Vec<Record>, OneDError> {
    serde_json::from_str(text).map_err(|e| OneDError::Metadata(format!("{what}: {e}")))
}

/// The 1D groupings' `filename`s, in the groupings file's order (their job ids).
pub fn grouping_names() -> Result<Vec<String>, OneDError> {
    Ok(records(GROUPINGS, "groupings")?
        .iter()
        .map(|r| text(r, "filename"))
        .collect())
}

fn text(r: &Record, k: &str) -> String {
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

    fn grouping_record(&self) -> Result<Record, OneDError> {
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
    fn blanked(&self, field: &str) -> usize {
        match (self.grouping, self.freq) {
            (0, _) => 2,
            (1, Frequency::AvgDay) => 1,
            (2, _) if ["com", "amp", "mass"].iter().any(|s| field.contains(s)) => 1,
            _ => 0,
        }
    }
}

/// The PO.DAAC row of a file: (short name, long name, DOI id, description).
fn podaac_row(file: &str) -> Result<(String, String, String, String), OneDError> {
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
    let now = crate::granule::now_utc();
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
        let (s, e) = time_units("days since 1992-01-01").unwrap();
        assert_eq!((s, e.iso()), (86400.0, "1992-01-01T00:00:00".to_string()));
    }
}
