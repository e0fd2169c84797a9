//! Lat-lon granules: the task's fields mapped to the regular 0.5° grid with the
//! mapping factors ([`crate::regrid`]), vector pairs interpolated to cell centres
//! and rotated to east/north first, written with the coordinates, bounds and
//! attributes of EDP's lat-lon granules.
//!
//! Scalars stream level by level into the writer, which finds `valid_min`/`valid_max`
//! as the values go by, so each level is regridded once. A vector pair is one slab
//! group: each level of `UVEL` and `VVEL` is read, rotated and regridded once and gives
//! that level of both `EVEL` and `NVEL`; no whole field is held.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Value;

use super::attrs::{self, merge_variable_record, Attrs};
use super::finite::{Found, NonFinite, NonFinitePolicy, StreamCheck};
use super::native::{input_prefix, open_mds};
use super::scratch;
use super::{Context, GranuleError, FILL_F32};
use crate::grid::{Grid, GridVar};
use crate::llc::{PointType, NTILES};
use crate::mds::MdsFile;
use crate::metadata::MetadataSet;
use crate::ncio::{
    AttrValue, Compression, DatasetDef, GroupProducer, SlabError, SlabGroup, SlabProducer, VarData,
    VarDef,
};
use crate::regrid::{apply, vector, Factors, TargetGrid};
use crate::tasks::{GranuleName, Task};

/// The target grid a granule-name label stands for (`0p50deg` → 0.5°).
pub fn target_of(name: &GranuleName) -> Result<TargetGrid, GranuleError> {
    let res = name
        .label
        .strip_suffix("deg")
        .map(|s| s.replace('p', "."))
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| {
            GranuleError::Task(format!(
                "lat-lon label {:?} is not <degrees>deg (e.g. 0p50deg)",
                name.label
            ))
        })?;
    Ok(TargetGrid::global(res)?)
}

/// One MDS input of the granule.
struct Input {
    name: String,
    path: PathBuf,
    file: MdsFile,
    record: usize,
    point: PointType,
    /// Levels read (1 for 2D fields, the grid's nz for 3D).
    levels: usize,
}

impl Input {
    fn read_level(&self, grid: &Grid, k: usize, out: &mut [f32]) -> Result<(), GranuleError> {
        self.file
            .read_level_tiles(self.record, k, grid.n, out)
            .map_err(|e| GranuleError::Input {
                var: self.name.clone(),
                source: e,
            })
    }

    /// The non-finite values in wet cells, over all levels read (an error's count).
    fn nonfinite(&self, grid: &Grid) -> Result<NonFinite, GranuleError> {
        let len = grid.level_len();
        let per_level = (0..self.levels)
            .into_par_iter()
            .map(|k| {
                let mut v = vec![0f32; len];
                self.read_level(grid, k, &mut v)?;
                let wet = grid.wet_level(self.point, k)?;
                Ok(NonFinite::scan_level(grid.n, k, &v, &wet))
            })
            .collect::<Result<Vec<_>, GranuleError>>()?;
        Ok(per_level
            .into_iter()
            .fold(NonFinite::default(), NonFinite::then))
    }
}

/// An input with the non-finite check of each level as it is read (once, while the
/// granule is written).
struct Checked {
    input: Arc<Input>,
    check: Arc<StreamCheck>,
}

impl Checked {
    fn new(input: Input, grid: &Arc<Grid>, policy: NonFinitePolicy) -> Checked {
        let input = Arc::new(input);
        let (i, g) = (Arc::clone(&input), Arc::clone(grid));
        let check = StreamCheck::new(
            input.path.clone(),
            &input.name,
            policy,
            input.levels,
            Box::new(move || i.nonfinite(&g)),
        );
        Checked { input, check }
    }

    /// Level `k` into `out` (tile order), its non-finite wet values checked.
    fn read_level(&self, grid: &Grid, k: usize, out: &mut [f32]) -> Result<(), GranuleError> {
        self.input.read_level(grid, k, out)?;
        // Non-finite values are rare: the wet mask is read only when there is one
        // (branch-free test, vectorised).
        let finite = out.iter().fold(true, |all, v| all & v.is_finite());
        let found = if finite {
            NonFinite::default()
        } else {
            let wet = grid.wet_level(self.input.point, k)?;
            NonFinite::scan_level(grid.n, k, out, &wet)
        };
        self.check.level(k, found)
    }
}

fn open_input(
    out_name: &str,
    [data, meta]: &[String; 2],
    ctx: &Context,
    is_3d: bool,
) -> Result<Input, GranuleError> {
    let (name, file) = open_mds(out_name, data, meta)?;
    let grid = &ctx.grid;
    let shape = |what: String| GranuleError::Shape {
        path: PathBuf::from(meta),
        what,
    };
    if file.nx() != grid.n || file.ny() != NTILES * grid.n {
        return Err(shape(format!(
            "horizontal size {}x{}, but the grid is LLC{}",
            file.nx(),
            file.ny(),
            grid.n
        )));
    }
    let m = &ctx.metadata;
    let location = m
        .variable(&name)
        .and_then(|r| r.get("grid_location"))
        .and_then(Value::as_str);
    let point = super::grid_point(
        m.diagnostics.get(&name).map(|d| d.point),
        location,
        &name,
        out_name,
    )?;
    let levels = match (file.nz(), is_3d) {
        (1, false) => 1,
        (nz, true) if nz == grid.nz => nz,
        (nz, _) => {
            return Err(shape(format!(
                "{nz} level(s), but the grouping is {} on a grid of {} levels",
                if is_3d { "3D" } else { "2D" },
                grid.nz
            )))
        }
    };
    let record = file
        .record_index(&name)
        .or_else(|e| if file.nrecords() == 1 { Ok(0) } else { Err(e) })
        .map_err(|e| GranuleError::Input {
            var: out_name.to_string(),
            source: e,
        })?;
    Ok(Input {
        name,
        path: PathBuf::from(data),
        file,
        record,
        point,
        levels,
    })
}

/// Where a data variable's values come from.
enum Source {
    Scalar(Arc<Checked>),
    /// Index into the vector pairs, and which component.
    Vector {
        pair: usize,
        east: bool,
    },
}

/// The x and y inputs of a vector output, in that order, from the task's
/// `field_components` (or the input order when the task has none).
fn vector_inputs<'a>(
    task: &'a Task,
    out_name: &str,
    inputs: &'a [[String; 2]],
) -> Result<(&'a [String; 2], &'a [String; 2], bool), GranuleError> {
    let dm = &task.dynamic_metadata;
    let east = match dm
        .field_orientations
        .as_ref()
        .and_then(|o| o.get(out_name))
        .and_then(Value::as_str)
    {
        Some("zonal") => true,
        Some("meridional") => false,
        other => {
            return Err(GranuleError::Task(format!(
                "vector variable {out_name} has orientation {other:?}; expected \"zonal\" or \"meridional\""
            )))
        }
    };
    let [a, b] = inputs else {
        return Err(GranuleError::Task(format!(
            "variable {out_name} lists {} inputs; a vector needs its x and y components",
            inputs.len()
        )));
    };
    let comp = |k: &str| {
        dm.field_components
            .as_ref()
            .and_then(|c| c.get(out_name))
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
    };
    let (pa, pb) = (input_prefix(&a[0]), input_prefix(&b[0]));
    match (comp("x"), comp("y")) {
        (Some(x), Some(y)) if pa == Some(x) && pb == Some(y) => Ok((a, b, east)),
        (Some(x), Some(y)) if pa == Some(y) && pb == Some(x) => Ok((b, a, east)),
        (Some(x), Some(y)) => Err(GranuleError::Task(format!(
            "vector variable {out_name} names components x = {x}, y = {y}, but its inputs are {} and {}",
            a[0], b[0]
        ))),
        _ => Ok((a, b, east)),
    }
}

/// Reads, interpolates, rotates and regrids level `k` of a vector pair into its east
/// and north components (`nlat·nlon` each).
fn regrid_pair_level(
    grid: &Grid,
    factors: &Factors,
    (x, y): (&Checked, &Checked),
    k: usize,
    (e_out, n_out): (&mut [f32], &mut [f32]),
) -> Result<(), GranuleError> {
    // Each is written whole before it is read: by the reads, `to_centres`, `rotate`.
    let len = grid.level_len();
    let mut u = scratch::overwritten(len);
    let mut v = scratch::overwritten(len);
    x.read_level(grid, k, &mut u)?;
    y.read_level(grid, k, &mut v)?;
    let mut uc = scratch::overwritten(len);
    let mut vc = scratch::overwritten(len);
    let (xp, yp) = (x.input.point, y.input.point);
    vector::to_centres(grid.n, (xp, &u), (yp, &v), &mut uc, &mut vc)?;
    // Reuse the input buffers for the rotated components.
    vector::rotate(
        grid.horizontal(GridVar::AngleCs)?,
        grid.horizontal(GridVar::AngleSn)?,
        &uc,
        &vc,
        &mut u,
        &mut v,
    );
    apply::regrid_level_pair(factors, k, (&u, &v), (e_out, n_out), FILL_F32)?;
    Ok(())
}

/// The coordinate variables of a lat-lon granule: `head` after `time`, `bounds` after
/// the data, and the names the global `coordinates` lists.
pub(crate) struct Coordinates {
    pub head: Vec<VarDef>,
    pub bounds: Vec<VarDef>,
    pub global: Vec<&'static str>,
}

/// Builds the lat-lon coordinates (3D granules add `Z` and its bounds).
pub(crate) fn coordinates(
    m: &MetadataSet,
    grid: &Grid,
    target: TargetGrid,
    is_3d: bool,
) -> Coordinates {
    let coord = |cname: &str, dims: &[&str], data: VarData, bounds: bool| -> VarDef {
        let mut a = Attrs::new();
        if let Some(r) = crate::metadata::record_named(&m.coords_latlon, cname) {
            attrs::merge_coord_record(&mut a, r, bounds);
        }
        let mut v = VarDef::new(cname, dims, data);
        v.attrs = a;
        v
    };
    let mut head = Vec::new();
    if is_3d {
        let z = grid.rc.iter().map(|&x| x as f32).collect();
        head.push(coord("Z", &["Z"], VarData::F32(z), false));
    }
    let lats: Vec<f32> = (0..target.nlat).map(|j| target.lat(j) as f32).collect();
    let lons: Vec<f32> = (0..target.nlon).map(|i| target.lon(i) as f32).collect();
    head.push(coord("latitude", &["latitude"], VarData::F32(lats), false));
    head.push(coord(
        "longitude",
        &["longitude"],
        VarData::F32(lons),
        false,
    ));
    let half = target.resolution / 2.0;
    let edges = |centres: Vec<f64>| {
        VarData::F32(
            centres
                .into_iter()
                .flat_map(|c| [(c - half) as f32, (c + half) as f32])
                .collect(),
        )
    };
    let mut bounds = vec![
        coord(
            "latitude_bnds",
            &["latitude", "nv"],
            edges((0..target.nlat).map(|j| target.lat(j)).collect()),
            true,
        ),
        coord(
            "longitude_bnds",
            &["longitude", "nv"],
            edges((0..target.nlon).map(|i| target.lon(i)).collect()),
            true,
        ),
    ];
    let mut global = vec!["latitude_bnds", "longitude_bnds"];
    if is_3d {
        // EDP: [0 or −Σ drF[..k], −Σ drF[..=k]].
        let mut top = 0.0f64;
        let mut zb = Vec::with_capacity(2 * grid.nz);
        for d in &grid.drf {
            zb.extend([-top as f32, -(top + d) as f32]);
            top += d;
        }
        bounds.push(coord("Z_bnds", &["Z", "nv"], VarData::F32(zb), true));
        global.push("Z_bnds");
    }
    Coordinates {
        head,
        bounds,
        global,
    }
}

/// The dimensions of a lat-lon granule (`time` of length 1 included).
pub(crate) fn dimensions(target: TargetGrid, nz: usize, is_3d: bool) -> Vec<(String, usize)> {
    let mut dims = vec![("time".to_string(), 1)];
    if is_3d {
        dims.push(("Z".into(), nz));
    }
    dims.extend([
        ("latitude".into(), target.nlat),
        ("longitude".into(), target.nlon),
        ("nv".into(), 2),
    ]);
    dims
}

/// Builds the dataset of a lat-lon granule with the given (checked) factors.
pub fn build(
    task: &Task,
    name: &GranuleName,
    ctx: &Context,
    factors: &Arc<Factors>,
    now: &str,
) -> Result<(DatasetDef, Found), GranuleError> {
    let grid = &ctx.grid;
    let m: &MetadataSet = &ctx.metadata;
    let target = factors.header.target;
    let is_3d = task.dynamic_metadata.dimension.eq_ignore_ascii_case("3D");
    if task.variables.is_empty() {
        return Err(GranuleError::Task("the task lists no variables".into()));
    }
    factors_cover(factors, grid, is_3d)?;
    let opened = open_sources(task, ctx, is_3d)?;
    let found = opened.found();
    let pair_groups = pair_groups(&opened, grid, factors);
    let mut next_member = vec![0usize; opened.pairs.len()];

    let zip = Compression {
        deflate_level: ctx.encoding.deflate_level,
        shuffle: ctx.encoding.shuffle,
    };
    let coord_vars = coordinates(m, grid, target, is_3d);
    let (time_var, time_bnds) = super::time_vars(task, m, &m.coords_latlon)?;
    let mut vars = vec![time_var];
    vars.extend(coord_vars.head);

    let mut keywords = Vec::new();
    for (out, src) in opened.sources {
        let data = match src {
            Source::Vector { pair, .. } => {
                let member = next_member[pair];
                next_member[pair] += 1;
                VarData::GroupF32 {
                    slab_dim: usize::from(is_3d),
                    group: Arc::clone(&pair_groups[pair]),
                    member,
                }
            }
            Source::Scalar(input) => scalar_slabs(input, &out, grid, factors, is_3d),
        };
        vars.push(data_var(m, &out, data, target, is_3d, zip, &mut keywords));
    }
    vars.push(time_bnds);
    vars.extend(coord_vars.bounds);
    let mut global_coords = coord_vars.global;
    global_coords.push("time_bnds");
    global_coords.sort();

    let globals = attrs::granule_globals(m, task, name, keywords, now, &global_coords);

    let dims = dimensions(target, grid.nz, is_3d);
    Ok((
        DatasetDef {
            dims,
            vars,
            global_attrs: globals,
        },
        found,
    ))
}

/// The factors must be for this grid and cover the levels the granule needs.
pub(super) fn factors_cover(
    factors: &Factors,
    grid: &Grid,
    is_3d: bool,
) -> Result<(), GranuleError> {
    let needed = if is_3d { grid.nz } else { 1 };
    if factors.header.n != grid.n || factors.levels() < needed {
        return Err(GranuleError::Task(format!(
            "mapping factors {} cover LLC{} with {} level(s); this granule needs LLC{} with {needed}",
            factors.origin.display(),
            factors.header.n,
            factors.levels(),
            grid.n
        )));
    }
    Ok(())
}

/// The task's inputs, each opened once (vector pairs share theirs), and where each
/// output variable's values come from.
struct Opened {
    inputs: HashMap<String, Arc<Checked>>,
    pairs: Vec<(Arc<Checked>, Arc<Checked>)>,
    sources: Vec<(String, Source)>,
}

impl Opened {
    /// Non-finite values in wet cells are checked level by level as the inputs are read.
    fn found(&self) -> Found {
        let mut checked: Vec<&Arc<Checked>> = self.inputs.values().collect();
        checked.sort_by(|a, b| a.input.path.cmp(&b.input.path));
        Found {
            known: 0,
            streamed: checked.iter().map(|c| Arc::clone(&c.check)).collect(),
        }
    }
}

/// Opens every input once, failing fast.
fn open_sources(task: &Task, ctx: &Context, is_3d: bool) -> Result<Opened, GranuleError> {
    let grid = &ctx.grid;
    let mut inputs: HashMap<String, Arc<Checked>> = HashMap::new();
    let mut open = |out: &str, pair: &[String; 2]| -> Result<Arc<Checked>, GranuleError> {
        if let Some(i) = inputs.get(&pair[0]) {
            return Ok(Arc::clone(i));
        }
        let i = Arc::new(Checked::new(
            open_input(out, pair, ctx, is_3d)?,
            grid,
            ctx.nonfinite,
        ));
        inputs.insert(pair[0].clone(), Arc::clone(&i));
        Ok(i)
    };
    let mut pairs: Vec<(Arc<Checked>, Arc<Checked>)> = Vec::new();
    let mut sources = Vec::new();
    for (out, list) in &task.variables {
        let src = match list.as_slice() {
            [] => {
                return Err(GranuleError::Task(format!(
                    "variable {out} lists no input files"
                )))
            }
            [one] => {
                let i = open(out, one)?;
                match i.input.point {
                    PointType::C => {}
                    PointType::G => {
                        return Err(GranuleError::Unsupported(format!(
                            "{out}: G-point fields cannot be mapped to the lat-lon grid"
                        )))
                    }
                    p => log::warn!(
                        "{out}: a {p:?}-point scalar is mapped with C-point factors, as EDP does"
                    ),
                }
                Source::Scalar(i)
            }
            list => {
                let (xp, yp, east) = vector_inputs(task, out, list)?;
                let (x, y) = (open(out, xp)?, open(out, yp)?);
                let pair = match pairs
                    .iter()
                    .position(|(a, b)| a.input.path == x.input.path && b.input.path == y.input.path)
                {
                    Some(p) => p,
                    None => {
                        pairs.push((x, y));
                        pairs.len() - 1
                    }
                };
                Source::Vector { pair, east }
            }
        };
        sources.push((out.clone(), src));
    }
    Ok(Opened {
        inputs,
        pairs,
        sources,
    })
}

/// Vector pairs: one slab group each, so every level of the pair is read, rotated and
/// regridded once for all the components the task asks for.
fn pair_groups(opened: &Opened, grid: &Arc<Grid>, factors: &Arc<Factors>) -> Vec<Arc<SlabGroup>> {
    let mut groups = Vec::with_capacity(opened.pairs.len());
    for (pair, (x, y)) in opened.pairs.iter().enumerate() {
        let wanted: Vec<bool> = opened
            .sources
            .iter()
            .filter_map(|(_, s)| match s {
                Source::Vector { pair: p, east } if *p == pair => Some(*east),
                _ => None,
            })
            .collect();
        let (g, f, x, y) = (
            Arc::clone(grid),
            Arc::clone(factors),
            Arc::clone(x),
            Arc::clone(y),
        );
        let nt = factors.header.target.len();
        let members = wanted.len();
        let produce: GroupProducer = Arc::new(move |k, outs| {
            let regrid = |e: &mut [f32], n: &mut [f32]| {
                regrid_pair_level(&g, &f, (&x, &y), k, (e, n))
                    .map_err(|err| Box::new(err.for_var(&x.input.name)) as SlabError)
            };
            // Both components asked for (the usual case): regridded straight into
            // the writer's buffers.
            match (&mut *outs, wanted.as_slice()) {
                ([e, n], [true, false]) | ([n, e], [false, true]) => return regrid(e, n),
                _ => {}
            }
            let mut e = vec![0f32; nt];
            let mut n = vec![0f32; nt];
            regrid(&mut e, &mut n)?;
            for (out, &east) in outs.iter_mut().zip(&wanted) {
                out.copy_from_slice(if east { &e } else { &n });
            }
            Ok(())
        });
        groups.push(Arc::new(SlabGroup { members, produce }));
    }
    groups
}

/// A scalar's levels, each read and regridded as the writer asks for it.
fn scalar_slabs(
    input: Arc<Checked>,
    out: &str,
    grid: &Arc<Grid>,
    factors: &Arc<Factors>,
    is_3d: bool,
) -> VarData {
    let (g, f, var) = (Arc::clone(grid), Arc::clone(factors), out.to_string());
    let produce: SlabProducer = Arc::new(move |k: usize, dst: &mut [f32]| {
        // Written whole by the read.
        let mut src = scratch::overwritten(g.level_len());
        input
            .read_level(&g, k, &mut src)
            .and_then(|()| Ok(apply::regrid_level(&f, k, &src, dst, FILL_F32)?))
            .map_err(|e| Box::new(e.for_var(&var)) as SlabError)
    });
    VarData::SlabsF32 {
        slab_dim: usize::from(is_3d),
        produce,
    }
}

/// A data variable of the granule: its dimensions, attributes (native record first,
/// then the lat-lon one overrides, EDP's order), fill, compression and chunks of one
/// level. Its GCMD keywords go to `keywords`.
fn data_var(
    m: &MetadataSet,
    out: &str,
    data: VarData,
    target: TargetGrid,
    is_3d: bool,
    zip: Compression,
    keywords: &mut Vec<String>,
) -> VarDef {
    let mut dims = vec!["time"];
    if is_3d {
        dims.push("Z");
    }
    dims.extend(["latitude", "longitude"]);
    let mut a = Attrs::new();
    // Placeholders: the writer sets them from the values as they stream by, so each
    // level is regridded once.
    a.push(("valid_min".into(), AttrValue::F32(f32::NAN)));
    a.push(("valid_max".into(), AttrValue::F32(f32::NAN)));
    for r in [
        m.variable(out),
        crate::metadata::record_named(&m.variables_latlon, out),
    ]
    .into_iter()
    .flatten()
    {
        merge_variable_record(&mut a, r);
        keywords.extend(attrs::gcmd_keywords(r));
    }
    a.push(("coordinates".into(), dims.join(" ").into()));
    let mut v = VarDef::new(out, &dims, data);
    v.attrs = a;
    v.fill = Some(AttrValue::F32(FILL_F32));
    v.valid_range = true;
    v.compression = Some(zip);
    let mut chunks = vec![1];
    if is_3d {
        chunks.push(1);
    }
    chunks.extend([target.nlat, target.nlon]);
    v.chunks = Some(chunks);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_give_resolutions() {
        let name =
            GranuleName::parse("x/SSH_mon_mean_1992-01_ECCO_V4r4_latlon_0p50deg.nc").unwrap();
        assert_eq!(target_of(&name).unwrap(), TargetGrid::ecco_half_degree());
        let mut other = name.clone();
        other.label = "1p00deg".into();
        assert_eq!(target_of(&other).unwrap().nlat, 180);
        other.label = "llc0090".into();
        assert!(target_of(&other).is_err());
    }
}
