//! Native-grid granules: the task's fields on the 13 LLC tiles, masked on dry cells,
//! with the index and geographic coordinates, bounds and time EDP writes.
//!
//! Data stream level by level from the memory-mapped MDS inputs, each level read once:
//! the writer finds `valid_min`/`valid_max` over wet cells as the levels go by, and
//! each level's non-finite wet values are checked as it is read ([`StreamCheck`]).

use std::sync::{Arc, Mutex, Weak};

use rayon::prelude::*;

use super::attrs::{self, merge_variable_record, Attrs};
use super::finite::{Found, NonFinite, StreamCheck};
use super::{Context, GranuleError, FILL_F32};
use crate::grid::{Grid, GridError, GridVar};
use crate::llc::{PointType, NTILES};
use crate::mds::MdsFile;
use crate::metadata::MetadataSet;
use crate::ncio::{
    AttrValue, Compression, DatasetDef, SharedValues, SlabError, SlabProducer, VarData, VarDef,
};
use crate::tasks::{GranuleName, Task};

/// One data variable of the granule and where its values come from.
struct Field {
    out_name: String,
    input_name: String,
    file: Arc<MdsFile>,
    record: usize,
    point: PointType,
    /// `k`, `k_u` or `k_l` for 3D fields.
    vertical: Option<&'static str>,
}

/// A data variable's attributes, in EDP's order (diagnostics, value-range
/// placeholders, the metadata record, `coordinates`), and the coordinates it names; the
/// record's GCMD keywords are added to `keywords`.
fn data_attrs(
    m: &MetadataSet,
    f: &Field,
    keywords: &mut Vec<String>,
) -> (Attrs, Vec<&'static str>) {
    let mut a = Attrs::new();
    if let Some(d) = m.diagnostics.get(&f.input_name) {
        a.push(("long_name".into(), d.long_name.as_str().into()));
        a.push(("units".into(), d.units.as_str().into()));
        if let Some(mate) = &d.mate {
            a.push(("mate".into(), mate.as_str().into()));
        }
    }
    // Placeholders: the writer sets them from the values as they stream by.
    a.push(("valid_min".into(), AttrValue::F32(f32::NAN)));
    a.push(("valid_max".into(), AttrValue::F32(f32::NAN)));
    if let Some(r) = m.variable(&f.out_name) {
        merge_variable_record(&mut a, r);
        keywords.extend(attrs::gcmd_keywords(r));
    }
    let mut coords = vec!["tile", "time"];
    match f.point {
        PointType::C => coords.extend(["XC", "YC"]),
        PointType::G => coords.extend(["XG", "YG"]),
        _ => {}
    }
    if let Some(vd) = f.vertical {
        coords.push(vertical_coord(vd));
    }
    a.push(("coordinates".into(), coords.join(" ").into()));
    (a, coords)
}

/// The MDS prefix of the input `data` of the output `out_name`, and the input opened.
pub(super) fn open_mds(
    out_name: &str,
    data: &str,
    meta: &str,
) -> Result<(String, MdsFile), GranuleError> {
    let name = input_prefix(data)
        .ok_or_else(|| {
            GranuleError::Task(format!(
                "input {data} of {out_name} is not named <VAR>_<mon_mean|day_mean|day_snap>.<step>.data"
            ))
        })?
        .to_string();
    let file =
        MdsFile::open(std::path::Path::new(data), std::path::Path::new(meta)).map_err(|e| {
            GranuleError::Input {
                var: out_name.to_string(),
                source: e,
            }
        })?;
    Ok((name, file))
}

/// The MDS prefix of an input (`SSH` of `SSH_mon_mean.0000000732.data`): the name
/// before the first period token, as EDP's `ECCOMDSFilestr` parses it.
pub fn input_prefix(data_path: &str) -> Option<&str> {
    let file = data_path.rsplit(['/', '\\']).next()?;
    // `_TI.` (time-invariant inputs) with its period so that a name holding `_TI`
    // is not cut there.
    [
        "_day_snap",
        "_mon_snap",
        "_snap",
        "_day_mean",
        "_mon_mean",
        "_TI.",
    ]
    .iter()
    .filter_map(|t| file.find(t))
    .min()
    .map(|p| &file[..p])
    .filter(|p| !p.is_empty())
}

fn open_field(task: &Task, out_name: &str, ctx: &Context) -> Result<Field, GranuleError> {
    let inputs = &task.variables[out_name];
    let [data, meta] = match inputs.as_slice() {
        [pair] => pair,
        [] => {
            return Err(GranuleError::Task(format!(
                "variable {out_name} lists no input files"
            )))
        }
        _ => {
            return Err(GranuleError::Unsupported(format!(
                "variable {out_name} has {} input components; vector fields are produced on the lat-lon grid only",
                inputs.len()
            )))
        }
    };
    let (input_name, file) = open_mds(out_name, data, meta)?;
    let grid = &ctx.grid;
    let path = || std::path::PathBuf::from(meta);
    if file.nx() != grid.n || file.ny() != NTILES * grid.n {
        return Err(GranuleError::Shape {
            path: path(),
            what: format!(
                "horizontal size {}x{}, but the grid is LLC{} ({}x{})",
                file.nx(),
                file.ny(),
                grid.n,
                grid.n,
                NTILES * grid.n
            ),
        });
    }
    let m = &ctx.metadata;
    let diag = m.diagnostics.get(&input_name);
    let record_meta = m.variable(out_name).or_else(|| m.variable(&input_name));
    let location = record_meta
        .and_then(|r| r.get("grid_location"))
        .and_then(|v| v.as_str());
    let point = match super::grid_point(diag.map(|d| d.point), location, &input_name, out_name)? {
        // A corner field known only from its metadata is written at C points here.
        PointType::G if diag.is_none() => PointType::C,
        p => p,
    };
    let vertical = match (file.nz(), diag.and_then(|d| d.vertical)) {
        (1, None) => None,
        (1, Some(_)) if grid.nz == 1 => None,
        (nz, v) if nz == grid.nz => Some(v.unwrap_or("k")),
        (nz, _) => {
            return Err(GranuleError::Shape {
                path: path(),
                what: format!(
                    "{nz} levels, but {} expects {}",
                    input_name,
                    if diag.and_then(|d| d.vertical).is_some() {
                        format!("the grid's {} levels", grid.nz)
                    } else {
                        "1 level (a 2D field)".to_string()
                    }
                ),
            })
        }
    };
    if vertical.is_some() != task.dynamic_metadata.dimension.eq_ignore_ascii_case("3D") {
        return Err(GranuleError::Shape {
            path: path(),
            what: format!(
                "{} level(s), but the grouping is {}",
                file.nz(),
                task.dynamic_metadata.dimension
            ),
        });
    }
    let record =
        file.record_index(&input_name).or_else(
            |e| {
                if file.nrecords() == 1 {
                    Ok(0)
                } else {
                    Err(e)
                }
            },
        );
    let record = record.map_err(|e| GranuleError::Input {
        var: out_name.to_string(),
        source: e,
    })?;
    Ok(Field {
        out_name: out_name.to_string(),
        input_name,
        file: Arc::new(file),
        record,
        point,
        vertical,
    })
}

/// Reads level `k` of a field into `out`, with dry and non-finite cells set to the fill;
/// returns the non-finite values found in wet cells.
fn masked_level(
    grid: &Grid,
    file: &MdsFile,
    record: usize,
    point: PointType,
    k: usize,
    out: &mut [f32],
) -> Result<NonFinite, GranuleError> {
    let read = |out: &mut [f32]| {
        file.read_level_tiles(record, k, grid.n, out)
            .map_err(|e| GranuleError::Input {
                var: String::new(),
                source: e,
            })
    };
    read(out)?;
    let wet = grid.wet_level(point, k)?;
    // One branch-free (vectorised) pass masks the level and notes whether a wet value
    // was not finite; only then (rare: an error or a warning) is the level read again
    // to count and place them.
    let mut wet_nonfinite = false;
    for (v, &w) in out.iter_mut().zip(wet.iter()) {
        let bad = !v.is_finite();
        wet_nonfinite |= bad & (w != 0);
        *v = if (w == 0) | bad { FILL_F32 } else { *v };
    }
    if !wet_nonfinite {
        return Ok(NonFinite::default());
    }
    let mut raw = vec![0f32; out.len()];
    read(&mut raw)?;
    Ok(NonFinite::scan_level(grid.n, k, &raw, &wet))
}

/// The non-finite values in wet cells of every level of a field (an error's count).
fn scan_field(
    grid: &Grid,
    file: &MdsFile,
    record: usize,
    point: PointType,
    levels: usize,
) -> Result<NonFinite, GranuleError> {
    let len = grid.level_len();
    let per_level: Vec<NonFinite> = (0..levels)
        .into_par_iter()
        .map(|k| {
            let mut v = vec![0f32; len];
            masked_level(grid, file, record, point, k, &mut v)
        })
        .collect::<Result<_, GranuleError>>()?;
    Ok(per_level
        .into_iter()
        .fold(NonFinite::default(), NonFinite::then))
}

/// Horizontal chunk shape `(tile, j, i)`: a whole level while it stays ≤ 16 MiB,
/// else one tile, else square sub-tiles (LLC4320).
pub fn horizontal_chunks(n: usize) -> [usize; 3] {
    const MAX: usize = 1 << 22;
    if NTILES * n * n <= MAX {
        [NTILES, n, n]
    } else if n * n <= MAX {
        [1, n, n]
    } else {
        let parts = n.div_ceil(2048);
        let c = n.div_ceil(parts);
        [1, c, c]
    }
}

/// xmitgcm's index dimensions: name, axis, long name, `c_grid_axis_shift` (none, one
/// value or two) and `swap_dim`.
#[allow(clippy::type_complexity)]
const INDEX_DIMS: &[(&str, &str, &str, &[f64], &str)] = &[
    ("i", "X", "x-dimension of the t grid", &[], "XC"),
    ("i_g", "X", "x-dimension of the u grid", &[-0.5], "XG"),
    ("j", "Y", "y-dimension of the t grid", &[], "YC"),
    ("j_g", "Y", "y-dimension of the v grid", &[-0.5], "YG"),
    ("k", "Z", "z-dimension of the t grid", &[], "Z"),
    ("k_u", "Z", "z-dimension of the w grid", &[0.5], "Zu"),
    ("k_l", "Z", "z-dimension of the w grid", &[-0.5], "Zl"),
    (
        "k_p1",
        "Z",
        "z-dimension of the w grid",
        &[-0.5, 0.5],
        "Zp1",
    ),
];

/// What xmitgcm attaches to the grid coordinates before ECCO metadata is applied;
/// it fixes attribute order (and a few attributes ECCO's records lack).
fn coord_seed(name: &str) -> Attrs {
    let s = |v: &str| AttrValue::Str(v.to_string());
    let v: Vec<(&str, AttrValue)> = match name {
        "tile" => vec![("long_name", s("index of llc grid tile"))],
        // XC, YC (C points) and XG, YG (corners).
        "XC" | "YC" | "XG" | "YG" => {
            let (x, point) = (name.starts_with('X'), &name[1..]);
            vec![
                ("long_name", s(if x { "longitude" } else { "latitude" })),
                ("units", s(if x { "degrees_east" } else { "degrees_north" })),
                ("coordinate", s(&format!("Y{point} X{point}"))),
            ]
        }
        "Z" | "Zp1" | "Zu" | "Zl" => vec![
            ("long_name", s("vertical coordinate")),
            ("units", s("m")),
            ("positive", s("up")),
        ],
        _ => match INDEX_DIMS.iter().find(|d| d.0 == name) {
            Some(&(_, axis, long_name, shift, swap_dim)) => {
                let mut v = vec![("axis", s(axis)), ("long_name", s(long_name))];
                match shift {
                    [] => {}
                    [x] => v.push(("c_grid_axis_shift", AttrValue::F64(*x))),
                    xs => v.push(("c_grid_axis_shift", AttrValue::F64s(xs.to_vec()))),
                }
                v.push(("swap_dim", s(swap_dim)));
                v
            }
            None => vec![],
        },
    };
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The horizontal coordinates and bounds of a grid, shared by every native granule of
/// this process so the writer compresses them once per grid. They are produced tile by
/// tile from the grid's files whenever the writer needs them, never held whole: only
/// their compressed chunks are kept.
pub struct SharedCoords {
    xc: Arc<SharedValues>,
    yc: Arc<SharedValues>,
    xg: Arc<SharedValues>,
    yg: Arc<SharedValues>,
    xc_bnds: Arc<SharedValues>,
    yc_bnds: Arc<SharedValues>,
}

/// The [`SharedCoords`] of each grid in use, kept by the caller's context (a run holds
/// one for all its granules) so that every granule of a grid reuses the compressed
/// coordinates; an entry goes when its grid is closed.
#[derive(Default)]
pub struct CoordCache(Mutex<Vec<(Weak<Grid>, Arc<SharedCoords>)>>);

/// The [`SharedCoords`] of `grid`, made on first use (kept while the grid lives).
fn shared_coords(cache: &CoordCache, grid: &Arc<Grid>) -> Arc<SharedCoords> {
    let mut cache = cache.0.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(g, _)| g.strong_count() > 0);
    if let Some((_, c)) = cache
        .iter()
        .find(|(g, _)| std::ptr::eq(g.as_ptr(), Arc::as_ptr(grid)))
    {
        return Arc::clone(c);
    }
    let tile = grid.n * grid.n;
    // The producers hold the grid weakly, so the cache does not keep it alive.
    let produced =
        |per_tile: usize, read: fn(&Grid, usize, &mut [f32]) -> Result<(), GridError>| {
            let g = Arc::downgrade(grid);
            let produce: SlabProducer = Arc::new(move |t, out: &mut [f32]| {
                let grid = g.upgrade().ok_or("the grid was closed")?;
                read(&grid, t, out).map_err(|e| Box::new(e) as SlabError)
            });
            SharedValues::slabs(NTILES * per_tile, NTILES, produce)
        };
    let c = Arc::new(SharedCoords {
        xc: produced(tile, |g, t, out| g.read_tile(GridVar::Xc, t, out)),
        yc: produced(tile, |g, t, out| g.read_tile(GridVar::Yc, t, out)),
        xg: produced(tile, |g, t, out| g.read_tile(GridVar::Xg, t, out)),
        yg: produced(tile, |g, t, out| g.read_tile(GridVar::Yg, t, out)),
        xc_bnds: produced(4 * tile, |g, t, out| {
            let mut other = vec![0f32; out.len()];
            g.read_bounds_tile(t, out, &mut other)
        }),
        yc_bnds: produced(4 * tile, |g, t, out| {
            let mut other = vec![0f32; out.len()];
            g.read_bounds_tile(t, &mut other, out)
        }),
    });
    cache.push((Arc::downgrade(grid), Arc::clone(&c)));
    c
}

/// Name of the vertical coordinate along a vertical dimension.
fn vertical_coord(dim: &str) -> &'static str {
    match dim {
        "k_u" => "Zu",
        "k_l" => "Zl",
        "k_p1" => "Zp1",
        _ => "Z",
    }
}

/// The coordinate variables of a native granule, in EDP's order around `time`
/// (index coordinates, then `time`, then the geographic ones; bounds after the data).
pub(crate) struct Coordinates {
    pub index: Vec<VarDef>,
    pub geographic: Vec<VarDef>,
    pub bounds: Vec<VarDef>,
}

/// Builds the native coordinates (3D granules add the vertical ones).
pub(crate) fn coordinates(ctx: &Context, is_3d: bool) -> Coordinates {
    let grid = &ctx.grid;
    let m = &ctx.metadata;
    let (n, nz) = (grid.n, grid.nz);
    let zip = Compression {
        deflate_level: ctx.encoding.deflate_level,
        shuffle: ctx.encoding.shuffle,
    };
    let [ct, cj, ci] = horizontal_chunks(n);
    let coord = |name: &str, dims: &[&str], data: VarData, bounds: bool| -> VarDef {
        let mut attrs = coord_seed(name);
        if let Some(r) = m.native_coord(name) {
            attrs::merge_coord_record(&mut attrs, r, bounds);
        }
        let mut v = VarDef::new(name, dims, data);
        v.attrs = attrs;
        // Horizontal coordinate arrays are as large as a 2D field: compress them too
        // (EDP leaves coordinates uncompressed).
        if dims.len() >= 3 {
            v.compression = Some(zip);
            v.chunks = Some(if dims.len() == 4 {
                vec![ct, cj, ci, 4]
            } else {
                vec![ct, cj, ci]
            });
        }
        v
    };
    let index = |name: &str, len: usize| {
        coord(
            name,
            &[name],
            VarData::I32((0..len as i32).collect()),
            false,
        )
    };

    let shared = shared_coords(&ctx.coords, grid);
    let mut index_vars = vec![
        index("i", n),
        index("i_g", n),
        index("j", n),
        index("j_g", n),
    ];
    if is_3d {
        index_vars.extend([
            index("k", nz),
            index("k_u", nz),
            index("k_l", nz),
            index("k_p1", nz + 1),
        ]);
    }
    index_vars.push(index("tile", NTILES));
    // The horizontal coordinates and their bounds, shared by every granule of the grid.
    let shared_coord = |name: &str, dims: &[&str], v: &Arc<SharedValues>, is_bounds: bool| {
        coord(name, dims, VarData::Shared(Arc::clone(v)), is_bounds)
    };
    let mut vars = vec![
        shared_coord("XC", &["tile", "j", "i"], &shared.xc, false),
        shared_coord("YC", &["tile", "j", "i"], &shared.yc, false),
        shared_coord("XG", &["tile", "j_g", "i_g"], &shared.xg, false),
        shared_coord("YG", &["tile", "j_g", "i_g"], &shared.yg, false),
    ];
    let f32s = |v: &[f64]| VarData::F32(v.iter().map(|x| *x as f32).collect());
    if is_3d {
        vars.push(coord("Z", &["k"], f32s(&grid.rc), false));
        vars.push(coord("Zp1", &["k_p1"], f32s(&grid.rf), false));
        vars.push(coord("Zu", &["k_u"], f32s(&grid.rf[1..]), false));
        vars.push(coord("Zl", &["k_l"], f32s(&grid.rf[..nz]), false));
    }

    let mut bounds = vec![
        shared_coord("XC_bnds", &["tile", "j", "i", "nb"], &shared.xc_bnds, true),
        shared_coord("YC_bnds", &["tile", "j", "i", "nb"], &shared.yc_bnds, true),
    ];
    if is_3d {
        let z_bnds = (0..nz)
            .flat_map(|k| [grid.rf[k] as f32, grid.rf[k + 1] as f32])
            .collect();
        bounds.push(coord("Z_bnds", &["k", "nv"], VarData::F32(z_bnds), true));
    }
    Coordinates {
        index: index_vars,
        geographic: vars,
        bounds,
    }
}

/// The dimensions of a native granule (`time` of length 1 included).
pub(crate) fn dimensions(n: usize, nz: usize, is_3d: bool) -> Vec<(String, usize)> {
    let mut dims = vec![
        ("i".to_string(), n),
        ("i_g".into(), n),
        ("j".into(), n),
        ("j_g".into(), n),
    ];
    if is_3d {
        dims.extend([
            ("k".into(), nz),
            ("k_u".into(), nz),
            ("k_l".into(), nz),
            ("k_p1".into(), nz + 1),
        ]);
    }
    dims.extend([
        ("tile".into(), NTILES),
        ("time".into(), 1),
        ("nv".into(), 2),
        ("nb".into(), 4),
    ]);
    dims
}

/// Builds the dataset of a native granule; values stream while it is written.
pub fn build(
    task: &Task,
    name: &GranuleName,
    ctx: &Context,
    now: &str,
) -> Result<(DatasetDef, Found), GranuleError> {
    let grid = &ctx.grid;
    let m = &ctx.metadata;
    let n = grid.n;
    let nz = grid.nz;
    let is_3d = task.dynamic_metadata.dimension.eq_ignore_ascii_case("3D");
    if task.variables.is_empty() {
        return Err(GranuleError::Task("the task lists no variables".into()));
    }
    // Open and check every input before any work, so a bad input fails fast.
    let fields: Vec<Field> = task
        .variables
        .keys()
        .map(|v| open_field(task, v, ctx))
        .collect::<Result<_, _>>()?;
    let mut checks = Vec::with_capacity(fields.len());

    let zip = Compression {
        deflate_level: ctx.encoding.deflate_level,
        shuffle: ctx.encoding.shuffle,
    };
    let [ct, cj, ci] = horizontal_chunks(n);
    let coord_vars = coordinates(ctx, is_3d);
    let mut vars = coord_vars.index;
    let (time_var, time_bnds) = super::time_vars(task, m, &m.coords_native)?;
    vars.push(time_var);
    vars.extend(coord_vars.geographic);

    // Data variables: EDP's order puts time_bnds after the first one.
    let mut referenced: Vec<&str> = Vec::new();
    let mut keywords = Vec::new();
    let mut data_vars = Vec::new();
    for f in fields {
        let (jd, id) = f.point.dim_names();
        let mut dims = vec!["time"];
        if let Some(vd) = f.vertical {
            dims.push(vd);
        }
        dims.extend(["tile", jd, id]);
        let (a, coords) = data_attrs(m, &f, &mut keywords);
        referenced.extend(coords);

        let levels = if f.vertical.is_some() { nz } else { 1 };
        let (g, file, record, point) = (
            Arc::clone(&ctx.grid),
            Arc::clone(&f.file),
            f.record,
            f.point,
        );
        let check = StreamCheck::new(
            f.file.data_path().to_path_buf(),
            &f.input_name,
            ctx.nonfinite,
            levels,
            Box::new(move || scan_field(&g, &file, record, point, levels)),
        );
        checks.push(Arc::clone(&check));
        let grid = Arc::clone(&ctx.grid);
        let (file, var) = (Arc::clone(&f.file), f.out_name.clone());
        let produce: crate::ncio::SlabProducer = Arc::new(
            move |k: usize, out: &mut [f32]| -> Result<(), crate::ncio::SlabError> {
                masked_level(&grid, &file, record, point, k, out)
                    .and_then(|found| check.level(k, found))
                    .map_err(|e| Box::new(e.for_var(&var)) as crate::ncio::SlabError)
            },
        );
        let slab_dim = dims.len() - 4;
        let mut v = VarDef::new(&f.out_name, &dims, VarData::SlabsF32 { slab_dim, produce });
        v.attrs = a;
        v.fill = Some(AttrValue::F32(FILL_F32));
        v.valid_range = true;
        v.compression = Some(zip);
        let mut chunks = vec![1];
        if f.vertical.is_some() {
            chunks.push(1);
        }
        chunks.extend([ct, cj, ci]);
        v.chunks = Some(chunks);
        data_vars.push(v);
    }
    let mut data_vars = data_vars.into_iter();
    vars.extend(data_vars.next());
    vars.push(time_bnds);
    vars.extend(data_vars);
    vars.extend(coord_vars.bounds);

    // Auxiliary coordinates no data variable names go to the global `coordinates`.
    let mut aux: Vec<&str> = vec!["XC", "YC", "XG", "YG", "XC_bnds", "YC_bnds", "time_bnds"];
    if is_3d {
        aux.extend(["Z", "Zp1", "Zu", "Zl", "Z_bnds"]);
    }
    let mut global_coords: Vec<&str> = aux
        .into_iter()
        .filter(|c| !referenced.contains(c))
        .collect();
    global_coords.sort();

    let globals = attrs::granule_globals(m, task, name, keywords, now, &global_coords);

    let dims = dimensions(n, nz, is_3d);
    Ok((
        DatasetDef {
            dims,
            vars,
            global_attrs: globals,
        },
        Found {
            known: 0,
            streamed: checks,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_prefixes() {
        assert_eq!(
            input_prefix("a/b/SSH_mon_mean.0000000732.data"),
            Some("SSH")
        );
        assert_eq!(
            input_prefix("ADVx_TH_day_mean.0000000012.data"),
            Some("ADVx_TH")
        );
        assert_eq!(input_prefix("SSH_day_snap.0000000012.data"), Some("SSH"));
        assert_eq!(input_prefix("junk.data"), None);
        assert_eq!(
            input_prefix("t/DIFFKR_TI/DIFFKR_TI.0000000000.data"),
            Some("DIFFKR")
        );
    }

    #[test]
    fn chunk_shapes_stay_bounded() {
        assert_eq!(horizontal_chunks(90), [13, 90, 90]);
        assert_eq!(horizontal_chunks(1080), [1, 1080, 1080]);
        let [t, j, i] = horizontal_chunks(4320);
        assert_eq!(t, 1);
        assert!(j * i <= 1 << 22 && j * 3 >= 4320 / 2);
    }
}
