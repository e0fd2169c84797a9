//! Granule assembly: from one task to a complete NetCDF-4 dataset description
//! ([`build`]), which [`crate::run`] writes with [`crate::ncio`] and places.
//!
//! This layer knows what an ECCO granule contains (dimensions, coordinates, data
//! variables, attributes from the metadata set) but not where its inputs come from
//! (S3 inputs are fetched by the runner first) nor how bytes reach the disk.

pub mod attrs;
pub mod compliance;
pub mod finite;
pub mod invariant;
pub mod latlon;
pub mod native;
pub mod oned;
pub mod quantize;
mod scratch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::grid::{Grid, GridError};
use crate::mds::MdsError;
use crate::metadata::{MetadataSet, Product, Record};
use crate::ncio::{DatasetDef, NcError};
use crate::ncio::{VarData, VarDef};
use crate::regrid::{Factors, RegridError};
use crate::tasks::{GranuleName, Task, TaskError};
use crate::time::Instant;
use attrs::{merge_record, set, Attrs};

/// The netCDF default fill for float32 (`9.96921e+36f`), which EDP writes on dry cells.
pub const FILL_F32: f32 = 9.969_21e36;

#[derive(Debug, thiserror::Error)]
pub enum GranuleError {
    #[error(transparent)]
    Name(#[from] TaskError),
    #[error(transparent)]
    BadName(#[from] crate::granule_name::BadGranuleName),
    #[error("bad task: {0}")]
    Task(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("input of {var}")]
    Input { var: String, source: MdsError },
    #[error("input {path}: {what}")]
    Shape { path: PathBuf, what: String },
    #[error("grid")]
    Grid(#[from] GridError),
    #[error(transparent)]
    Write(#[from] NcError),
    #[error(transparent)]
    OneD(#[from] crate::oned::OneDError),
    #[error("lat-lon mapping")]
    Regrid(#[from] RegridError),
    #[error("input {path}: {count} non-finite value(s) of {var} in wet cells, the first at tile {}, j {}, i {}, k {} (a broken input; --nonfinite fill writes them as fill)", first[0], first[1], first[2], first[3])]
    NonFinite {
        path: PathBuf,
        var: String,
        count: u64,
        /// (tile, j, i, k) of the first one.
        first: [usize; 4],
    },
}

impl GranuleError {
    /// Names the variable an input error belongs to, when the reader did not know it.
    fn for_var(self, var: &str) -> GranuleError {
        match self {
            GranuleError::Input { var: v, source } if v.is_empty() => GranuleError::Input {
                var: var.to_string(),
                source,
            },
            other => other,
        }
    }
}

/// How data variables' values are encoded (EDP: zlib level 5 with shuffle, optional
/// BitRound). How the run writes the file is the run's choice (`run::WriteOptions`).
#[derive(Debug, Clone, Copy)]
pub struct Encoding {
    pub deflate_level: u8,
    pub shuffle: bool,
    /// Opt-in BitRound of named variables (`--significant-bits`); set once per process.
    pub significant_bits: Option<&'static quantize::BitRoundTable>,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding {
            deflate_level: 5,
            shuffle: true,
            significant_bits: None,
        }
    }
}

/// What every task of a run shares, loaded once.
#[derive(Clone)]
pub struct Context {
    pub metadata: Arc<MetadataSet>,
    pub grid: Arc<Grid>,
    pub encoding: Encoding,
    /// What non-finite values in wet cells do (see [`finite`]).
    pub nonfinite: finite::NonFinitePolicy,
    /// Mapping factors for lat-lon granules on this grid (opened or built by the caller).
    pub factors: Option<Arc<Factors>>,
    /// Native coordinates compressed once per grid: share one cache between the
    /// contexts of a run (`Default::default()` for a fresh one).
    pub coords: Arc<native::CoordCache>,
}

/// A granule described, ready to be written.
#[derive(Debug)]
pub struct Built {
    pub def: DatasetDef,
    /// Non-finite wet values (`--nonfinite fill` writes them as fill): counted while
    /// building, or as the inputs stream to the writer ([`finite::Found::filled`]
    /// once the granule is written).
    pub nonfinite: finite::Found,
    /// Variables BitRound-quantized, with the significant bits kept (empty: none).
    pub significant_bits: std::collections::BTreeMap<String, u8>,
}

/// Current UTC time as `YYYY-MM-DDThh:mm:ssZ`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!("{}Z", Instant(secs).iso())
}

/// Describes the granule of one task: reads its (local) inputs and returns the dataset,
/// without writing anything. Lat-lon granules need `ctx.factors`.
pub fn build(task: &Task, ctx: &Context) -> Result<Built, GranuleError> {
    // The 1D collections: a time series, no grid.
    if let Some(def) = oned::of_task(task, &now_utc()) {
        return Ok(Built {
            def: def?,
            nonfinite: Default::default(),
            significant_bits: Default::default(),
        });
    }
    let name = GranuleName::parse(&task.granule)?;
    let factors = match name.product {
        Product::Native => None,
        Product::Latlon => {
            let target = latlon::target_of(&name)?;
            let f = ctx.factors.as_ref().ok_or_else(|| {
                GranuleError::Regrid(RegridError::Config(format!(
                    "lat-lon granule {} needs mapping factors",
                    task.granule
                )))
            })?;
            crate::regrid::store::check_in_use(f, &ctx.grid, target)?;
            Some(f)
        }
    };
    let (mut def, nonfinite) = match (factors, name.freq) {
        (_, crate::time::Frequency::Ti) => invariant::build(task, &name, ctx, factors, &now_utc())?,
        (None, _) => native::build(task, &name, ctx, &now_utc())?,
        (Some(f), _) => latlon::build(task, &name, ctx, f, &now_utc())?,
    };
    compliance::enrich(&mut def);
    let significant_bits = match ctx.encoding.significant_bits {
        Some(table) => quantize::apply(&mut def, table),
        None => Default::default(),
    };
    Ok(Built {
        def,
        nonfinite,
        significant_bits,
    })
}

/// `time` and `time_bnds`: int32 hours since the model start (EDP's encoding), or
/// exact doubles when a bound is not a whole hour.
/// `coords` are the product's coordinate records (applied before the time records).
pub(crate) fn time_vars(
    task: &Task,
    m: &MetadataSet,
    coords: &[Record],
) -> Result<(VarDef, VarDef), GranuleError> {
    let clock = &m.release.clock;
    let dm = &task.dynamic_metadata;
    let parse = |what: &str, s: &str| {
        Instant::parse(s).map_err(|e| GranuleError::Task(format!("dynamic_metadata.{what}: {e}")))
    };
    let (centre, start, end) = (
        parse("time_coverage_center", &dm.time_coverage_center)?,
        parse("time_coverage_start", &dm.time_coverage_start)?,
        parse("time_coverage_end", &dm.time_coverage_end)?,
    );
    let hours = |t: Instant| (t.0 - clock.start.0) as f64 / 3600.0;
    let whole = [centre, start, end]
        .iter()
        .all(|t| (t.0 - clock.start.0) % 3600 == 0);
    let (time_data, bnds_data) = if whole {
        (
            VarData::I32(vec![hours(centre) as i32]),
            VarData::I32(vec![hours(start) as i32, hours(end) as i32]),
        )
    } else {
        (
            VarData::F64(vec![hours(centre)]),
            VarData::F64(vec![hours(start), hours(end)]),
        )
    };
    let skip = ["name", "grid_dimension", "units"];
    let mut time_attrs = Attrs::new();
    for r in [find_record(coords, "time"), m.time_coord("time")]
        .into_iter()
        .flatten()
    {
        merge_record(&mut time_attrs, r, &skip);
    }
    set(
        &mut time_attrs,
        "long_name",
        dm.time_long_name.as_str().into(),
    );
    time_attrs.push((
        "units".into(),
        format!("hours since {}", clock.start.iso()).into(),
    ));
    time_attrs.push(("calendar".into(), "proleptic_gregorian".into()));
    let mut time = VarDef::new("time", &["time"], time_data);
    time.attrs = time_attrs;
    let mut bnds_attrs = Attrs::new();
    for r in [find_record(coords, "time_bnds"), m.time_coord("time_bnds")]
        .into_iter()
        .flatten()
    {
        merge_record(&mut bnds_attrs, r, &skip);
    }
    let mut bnds = VarDef::new("time_bnds", &["time", "nv"], bnds_data);
    bnds.attrs = bnds_attrs;
    Ok((time, bnds))
}

fn find_record<'a>(records: &'a [Record], name: &str) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.get("name").and_then(|v| v.as_str()) == Some(name))
}

/// The grid point of input `input` (for output `out_name`): the diagnostics table's
/// (`diag`), else the variable metadata's `grid_location` (`u`, `v`, `g`, else C).
pub(crate) fn grid_point(
    diag: Option<crate::llc::PointType>,
    grid_location: Option<&str>,
    input: &str,
    out_name: &str,
) -> Result<crate::llc::PointType, GranuleError> {
    use crate::llc::PointType;
    Ok(match (diag, grid_location) {
        (Some(p), _) => p,
        (None, Some("u")) => PointType::U,
        (None, Some("v")) => PointType::V,
        (None, Some("g")) => PointType::G,
        (None, Some(_)) => PointType::C,
        (None, None) => {
            return Err(GranuleError::Task(format!(
                "{input} (for {out_name}) is neither in the diagnostics table nor in the variable metadata, so its grid point is unknown"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fill_is_netcdf_default_float_fill() {
        // NC_FILL_FLOAT in netcdf.h is 9.9692099683868690e+36f.
        assert_eq!(super::FILL_F32, 9.969_209_968_386_869e36_f64 as f32);
    }
}
