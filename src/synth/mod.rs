//! Deterministic synthetic LLC-N inputs for the demo, the tests and the benchmarks.
//!
//! Real ECCO output is large and cannot ship with the code, yet the pipeline
//! must be exercised end to end on the real layout. This module writes a true
//! lat-lon-cap grid (13 tiles, rotated faces 4/5, an Arctic cap that meets the
//! faces seamlessly; see [`geometry`]) with partial-cell bathymetry
//! ([`bathymetry`]) as float64 MDS grid files, and model output in EDP's input
//! layout sampled from closed-form fields ([`analytic`]) so downstream tests
//! know the exact answer. Everything is computed level by level in parallel and
//! streamed to disk, so memory stays at a few levels even for LLC270 and up;
//! the same configuration always produces byte-identical files.
//!
//! Three grid types, three jobs: [`geometry::LlcMap`] computes positions and
//! [`geometry::Metrics`] (distances, areas) from the closed-form map; [`generate`] writes
//! them as MDS grid files; [`SynthGrid`] holds the same float64 numbers in memory as the
//! answer tests compare against. What the pipeline itself reads is
//! [`crate::grid::Grid`], from the files (per tile, memory-mapped), never these.
//!
//! Output tree of [`generate`]:
//! `<out>/grid/{XC,YC,XG,YG,DXG,DYG,DXC,DYC,RAC,RAS,RAW,RAZ,AngleCS,AngleSN,Depth,hFacC,hFacW,hFacS,RC,RF,DRF,DRC,PHrefC,PHrefF}.{data,meta}`
//! plus `available_diagnostics.log`, and
//! `<out>/<release>/{diags_monthly,diags_daily,diags_inst}/<VAR>_<token>/<VAR>_<token>.<step>.{data,meta}`.

pub mod analytic;
pub mod bathymetry;
pub mod geometry;
pub mod invariant;
pub mod layout;
pub mod oned;
mod output;
pub mod release;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use bathymetry::{VerticalGrid, DRF_V4R4, HFAC_MIN};
pub use geometry::{LlcMap, Metrics, PointGeometry, Stagger, EARTH_RADIUS_M};
pub use layout::{monthly_step, Freq, VarSpec, Vertical, VARIABLES};

use crate::llc::{PointType, NTILES};
use crate::mds::{MdsError, MdsWriter, Precision};
use bathymetry::Bathymetry;
use layout::Source;
use output::Tally;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// LLC tile size N (90 for ECCO V4).
    pub n: usize,
    /// Number of vertical levels, 1 … 50 (the first `nz` V4r4 thicknesses).
    pub nz: usize,
    /// Release directory name under the output root; EDP's discovery needs it
    /// to contain the ECCO version string (e.g. "V4r4").
    pub release: String,
    /// Monthly means to write, from January 1992.
    pub months: usize,
    /// Daily means to write, from 1992-01-01.
    pub days: usize,
    /// Daily snapshots to write, from 1992-01-02T00:00.
    pub snapshots: usize,
    /// Variables to write (MITgcm names, see [`VARIABLES`]); `None` = all of those;
    /// `["all"]` = every field the embedded metadata's groupings read ([`release`]).
    pub variables: Option<Vec<String>>,
}

impl Default for SynthConfig {
    fn default() -> SynthConfig {
        SynthConfig {
            n: 90,
            nz: 50,
            release: "V4r4".to_string(),
            months: 2,
            days: 0,
            snapshots: 0,
            variables: None,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthReport {
    /// Files written (each `.data` and `.meta` counts, plus the diagnostics log).
    pub files_written: usize,
    /// Total bytes of those files.
    pub bytes_written: u64,
    /// `<out>/grid`.
    pub grid_dir: PathBuf,
    /// `<out>/<release>`.
    pub release_dir: PathBuf,
    /// Steps written for monthly means.
    pub monthly_steps: Vec<u64>,
    /// Steps written for daily means.
    pub daily_steps: Vec<u64>,
    /// Steps written for daily snapshots.
    pub snapshot_steps: Vec<u64>,
    /// Variables written, in generation order.
    pub variables: Vec<String>,
}

/// Why generation failed; every I/O failure names its path.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The configuration cannot be generated.
    #[error("invalid synthetic configuration: {0}")]
    InvalidConfig(String),
    /// A requested variable is not one the generator knows.
    #[error("unknown synthetic variable {name:?} (known: {known})")]
    UnknownVariable { name: String, known: String },
    /// The OS refused an operation.
    #[error(transparent)]
    Io(#[from] crate::error::FileError),
    /// Writing an MDS file failed (the error names the file).
    #[error(transparent)]
    Mds(#[from] MdsError),
}

/// The synthetic grid in memory, every horizontal array in tile order
/// `(tile, j, i)` (index `(t·N + j)·N + i`): the exact float64 answer for tests (what
/// [`crate::grid::Grid`] must read back from the files, and what fields are sampled
/// at). Whole arrays: for test sizes, not for large N.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthGrid {
    /// Tile size N.
    pub n: usize,
    /// Number of levels.
    pub nz: usize,
    /// Cell-centre longitude (degrees, (−180, 180]).
    pub xc: Vec<f64>,
    /// Cell-centre latitude (degrees).
    pub yc: Vec<f64>,
    /// Corner positions, face lengths, centre spacings and cell areas (the grid
    /// files' 2D metrics).
    pub metrics: Metrics,
    /// cos of the angle from east to model +x at the centre.
    pub angle_cs: Vec<f64>,
    /// sin of that angle.
    pub angle_sn: Vec<f64>,
    /// Model depth Σ hFacC·DRF (m, positive; 0 on land).
    pub depth: Vec<f64>,
    /// Level centres (m, negative), `nz` values.
    pub rc: Vec<f64>,
    /// Level interfaces (m, 0 then negative), `nz + 1` values.
    pub rf: Vec<f64>,
    /// Level thicknesses (m), `nz` values.
    pub drf: Vec<f64>,
    /// Centre spacing (m), `nz + 1` values.
    pub drc: Vec<f64>,
    /// `hFacC[k]` per level.
    pub hfac_c: Vec<Vec<f64>>,
    /// `hFacW[k]` per level (U points).
    pub hfac_w: Vec<Vec<f64>>,
    /// `hFacS[k]` per level (V points).
    pub hfac_s: Vec<Vec<f64>>,
    /// Positions and model-axis angles of the U points (west faces).
    pub u_points: PointGeometry,
    /// Positions and model-axis angles of the V points (south faces).
    pub v_points: PointGeometry,
}

impl SynthGrid {
    /// Index of `(tile, j, i)` in the horizontal arrays.
    pub fn index(&self, tile: usize, j: usize, i: usize) -> usize {
        (tile * self.n + j) * self.n + i
    }
}

/// Builds the grid of [`generate`] in memory (same numbers as the files).
/// Holds all `nz` levels of the three hFac fields: meant for tests (LLC90 × 50
/// levels is about 130 MB), not for large N. `n` below 1 is taken as 1 and
/// `nz` is clamped to 1 … 50 (this builder has no error path; [`generate`]
/// refuses such values instead).
pub fn llc_geometry(n: usize, nz: usize) -> SynthGrid {
    let n = n.max(1);
    let nz = nz.clamp(1, DRF_V4R4.len());
    let map = LlcMap::new(n);
    let bathy = Bathymetry::new(&map, VerticalGrid::new(nz));
    let c = map.point_geometry(Stagger::C);
    let m = map.metrics();
    let mut hfac = [Vec::new(), Vec::new(), Vec::new()];
    for k in 0..nz {
        for (dst, src) in hfac.iter_mut().zip(bathy.hfacs(k)) {
            dst.push(src);
        }
    }
    let [hfac_c, hfac_w, hfac_s] = hfac;
    let v = bathy.vertical().clone();
    SynthGrid {
        n,
        nz,
        xc: c.lon,
        yc: c.lat,
        metrics: m,
        angle_cs: c.cs,
        angle_sn: c.sn,
        depth: bathy.depth(),
        rc: v.rc,
        rf: v.rf,
        drf: v.drf,
        drc: v.drc,
        hfac_c,
        hfac_w,
        hfac_s,
        u_points: map.point_geometry(Stagger::U),
        v_points: map.point_geometry(Stagger::V),
    }
}

fn select_variables(cfg: &SynthConfig) -> Result<Vec<release::Var>, SynthError> {
    let Some(names) = &cfg.variables else {
        return Ok(VARIABLES.iter().map(release::Var::from_spec).collect());
    };
    if names.len() == 1 && names[0].eq_ignore_ascii_case(release::ALL) {
        let m = crate::metadata::MetadataSet::embedded()
            .map_err(|e| SynthError::InvalidConfig(crate::error::chain(&e)))?;
        return Ok(release::all_fields(&m));
    }
    for name in names {
        if layout::variable(name).is_none() {
            return Err(SynthError::UnknownVariable {
                name: name.clone(),
                known: VARIABLES
                    .iter()
                    .map(|v| v.name)
                    .chain([release::ALL])
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(VARIABLES
        .iter()
        .filter(|v| names.iter().any(|n| n == v.name))
        .map(release::Var::from_spec)
        .collect())
}

fn validate(cfg: &SynthConfig) -> Result<(), SynthError> {
    if cfg.n == 0 {
        return Err(SynthError::InvalidConfig("n must be at least 1".into()));
    }
    if cfg.nz == 0 || cfg.nz > DRF_V4R4.len() {
        return Err(SynthError::InvalidConfig(format!(
            "nz = {} is outside 1..={} (the V4r4 levels)",
            cfg.nz,
            DRF_V4R4.len()
        )));
    }
    let r = cfg.release.as_str();
    if r.is_empty() || r == "." || r == ".." || r.contains(['/', '\\']) || r == "grid" {
        return Err(SynthError::InvalidConfig(format!(
            "release {r:?} must be a plain directory name other than \"grid\""
        )));
    }
    Ok(())
}

/// Writes the synthetic grid and model output under `out` (created if needed;
/// existing files of the same names are overwritten).
pub fn generate(cfg: &SynthConfig, out: &Path) -> Result<SynthReport, SynthError> {
    validate(cfg)?;
    let vars = select_variables(cfg)?;
    let n = cfg.n;
    let mut tally = Tally::default();

    let map = LlcMap::new(n);
    let bathy = Bathymetry::new(&map, VerticalGrid::new(cfg.nz));
    let grid_dir = out.join("grid");
    let extra: Vec<&release::Var> = vars
        .iter()
        .filter(|v| layout::variable(&v.name).is_none())
        .collect();
    let c_points = write_grid(&map, &bathy, &grid_dir, &extra, &mut tally)?;

    // Only the points and wet-level counts the chosen variables need.
    let needs = |p: PointType| vars.iter().any(|v| v.point == p);
    let u_points = needs(PointType::U).then(|| map.point_geometry(Stagger::U));
    let v_points = needs(PointType::V).then(|| map.point_geometry(Stagger::V));
    let [wet_c, wet_u, wet_v] = bathy.wet_levels();

    let release_dir = out.join(&cfg.release);
    let v = bathy.vertical();
    let mut steps = [Vec::new(), Vec::new(), Vec::new()];
    let freqs = [
        (Freq::Monthly, cfg.months),
        (Freq::Daily, cfg.days),
        (Freq::Snapshot, cfg.snapshots),
    ];
    for (slot, (freq, count)) in steps.iter_mut().zip(freqs) {
        for index in 0..count {
            let step = freq.step(index);
            slot.push(step);
            let t = analytic::time_days(step);
            for spec in &vars {
                let (geo, wet) = match spec.point {
                    PointType::U => (u_points.as_ref(), &wet_u),
                    PointType::V => (v_points.as_ref(), &wet_v),
                    _ => (Some(&c_points), &wet_c),
                };
                let geo = geo.ok_or_else(|| {
                    SynthError::InvalidConfig(format!("no geometry for {}", spec.name))
                })?;
                let base = layout::field_base(&release_dir, freq, &spec.name, step);
                if let Some(dir) = base.parent() {
                    output::create_dir(dir)?;
                }
                let field = Field {
                    spec,
                    geo,
                    wet,
                    n,
                    t,
                };
                write_field(&field, v, &base, step)?;
                tally.add_pair(&base)?;
            }
        }
    }
    let [monthly_steps, daily_steps, snapshot_steps] = steps;
    Ok(SynthReport {
        files_written: tally.files,
        bytes_written: tally.bytes,
        grid_dir,
        release_dir,
        monthly_steps,
        daily_steps,
        snapshot_steps,
        variables: vars.iter().map(|v| v.name.clone()).collect(),
    })
}

/// Writes every grid file; returns the C-point geometry for the fields.
fn write_grid(
    map: &LlcMap,
    bathy: &Bathymetry,
    dir: &Path,
    extra: &[&release::Var],
    tally: &mut Tally,
) -> Result<PointGeometry, SynthError> {
    let n = map.n();
    output::create_dir(dir)?;
    let c = map.point_geometry(Stagger::C);
    {
        let m = map.metrics();
        for (name, values) in [
            ("XC", &c.lon),
            ("YC", &c.lat),
            ("XG", &m.xg),
            ("YG", &m.yg),
            ("DXG", &m.dxg),
            ("DYG", &m.dyg),
            ("DXC", &m.dxc),
            ("DYC", &m.dyc),
            ("RAC", &m.rac),
            ("AngleCS", &c.cs),
            ("AngleSN", &c.sn),
        ] {
            output::write_2d_f64(dir, name, n, values, tally)?;
        }
        // Face and corner areas as products of the lengths around them (MITgcm
        // computes them from the same lengths; close enough for synthetic data).
        let product =
            |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x * y).collect() };
        for (name, values) in [
            ("RAW", product(&m.dxc, &m.dyg)),
            ("RAS", product(&m.dxg, &m.dyc)),
            ("RAZ", product(&m.dxc, &m.dyc)),
        ] {
            output::write_2d_f64(dir, name, n, &values, tally)?;
        }
    }
    output::write_2d_f64(dir, "Depth", n, &bathy.depth(), tally)?;

    // hFacC/W/S stream together: each level's three fractions come from one pass.
    let nz = bathy.vertical().nz();
    let names = ["hFacC", "hFacW", "hFacS"];
    let mut writers = Vec::with_capacity(3);
    for name in names {
        writers.push(MdsWriter::create(
            &dir.join(name),
            n,
            Some(nz),
            Precision::F64,
            name,
            None,
        )?);
    }
    for k in 0..nz {
        for (w, level) in writers.iter_mut().zip(bathy.hfacs(k)) {
            w.write_level_tiles_f64(&level)?;
        }
    }
    for (w, name) in writers.into_iter().zip(names) {
        w.finish()?;
        tally.add_pair(&dir.join(name))?;
    }

    let v = bathy.vertical();
    for (name, values) in [
        ("RC", &v.rc),
        ("RF", &v.rf),
        ("DRF", &v.drf),
        ("DRC", &v.drc),
    ] {
        let base = dir.join(name);
        crate::mds::write_vector_f64(&base, values, name)?;
        tally.add_pair(&base)?;
    }
    // Reference hydrostatic potential g·|z| at centres and faces (MITgcm's phiRef).
    const GRAVITY: f64 = 9.81;
    for (name, z) in [("PHrefC", &v.rc), ("PHrefF", &v.rf)] {
        let values: Vec<f64> = z.iter().map(|z| -GRAVITY * z).collect();
        let base = dir.join(name);
        crate::mds::write_vector_f64(&base, &values, name)?;
        tally.add_pair(&base)?;
    }
    let log = dir.join("available_diagnostics.log");
    output::write_text(&log, &layout::available_diagnostics(nz, extra))?;
    tally.add(&log)?;
    Ok(c)
}

/// One variable at one instant, ready to be sampled level by level.
struct Field<'a> {
    spec: &'a release::Var,
    geo: &'a PointGeometry,
    wet: &'a [u16],
    n: usize,
    t: f64,
}

impl Field<'_> {
    /// Samples level `k` at depth `z` into `out` (tile order); land is 0.0.
    fn level(&self, k: usize, z: f64, out: &mut [f32]) {
        out.par_chunks_mut(self.n)
            .enumerate()
            .for_each(|(row, chunk)| {
                for (i, v) in chunk.iter_mut().enumerate() {
                    let p = row * self.n + i;
                    *v = if usize::from(self.wet[p]) <= k {
                        0.0
                    } else {
                        self.sample(p, z) as f32
                    };
                }
            });
    }

    fn sample(&self, p: usize, z: f64) -> f64 {
        let (lon, lat, t) = (self.geo.lon[p], self.geo.lat[p], self.t);
        match self.spec.source {
            Source::Scalar(f) => f(lon, lat, z, t),
            Source::VectorX(f) => {
                let (e, nn) = f(lon, lat, z, t);
                analytic::to_model_xy(e, nn, self.geo.cs[p], self.geo.sn[p]).0
            }
            Source::VectorY(f) => {
                let (e, nn) = f(lon, lat, z, t);
                analytic::to_model_xy(e, nn, self.geo.cs[p], self.geo.sn[p]).1
            }
            Source::Seeded(seed) => release::seeded(seed, lon, lat, z, t),
        }
    }
}

/// Streams one field file, computing level k+1 while level k is written.
fn write_field(
    field: &Field<'_>,
    v: &VerticalGrid,
    base: &Path,
    step: u64,
) -> Result<(), SynthError> {
    let n = field.n;
    let (levels, nz_dim) = match field.spec.vertical {
        Vertical::Surface => (1, None),
        _ => (v.nz(), Some(v.nz())),
    };
    let z_of = |k: usize| match field.spec.vertical {
        Vertical::Surface => 0.0,
        Vertical::Centre => v.rc[k],
        Vertical::Top => v.rf[k],
    };
    let mut writer = MdsWriter::create(
        base,
        n,
        nz_dim,
        Precision::F32,
        &field.spec.name,
        Some(step),
    )?;
    let len = NTILES * n * n;
    let mut current = vec![0.0f32; len];
    let mut next = vec![0.0f32; len];
    field.level(0, z_of(0), &mut current);
    for k in 0..levels {
        let (written, ()) = rayon::join(
            || writer.write_level_tiles(&current),
            || {
                if k + 1 < levels {
                    field.level(k + 1, z_of(k + 1), &mut next);
                }
            },
        );
        written?;
        std::mem::swap(&mut current, &mut next);
    }
    writer.finish()?;
    Ok(())
}
