//! Time-invariant granules: ECCO's geometry datasets (`GRID_GEOMETRY`, made from the
//! grid itself) and the `TI` groupings such as the mixing coefficients (made from MDS
//! inputs), native and lat-lon, without a time dimension.
//!
//! V4r4's groupings files list only the native mixing grouping; the geometry datasets
//! (both products) and the lat-lon mixing dataset that PO.DAAC publishes are derived
//! by `metadata` ([`derived_groupings`]) and numbered after the file's groupings. A `TI`
//! grouping with inputs is built like any granule of its product and its time axis
//! then removed ([`drop_time`]), so the data path is the one the time series use.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::attrs::{self, merge_variable_record, set, Attrs};
use super::finite::Found;
use super::{latlon, native, Context, GranuleError, FILL_F32};
use crate::grid::{Grid, GridVar};
use crate::llc::PointType;
use crate::mds::MdsFile;
use crate::metadata::{Product, Record};
use crate::ncio::{AttrValue, Compression, DatasetDef, VarData, VarDef};
use crate::regrid::{apply, Factors};
use crate::tasks::{GranuleName, Task};

// The derived groupings are metadata's; re-exported where other code may still name them.
pub use crate::metadata::{derived_groupings, is_geometry, GEOMETRY};

/// The description of a time-invariant dataset from ECCO's
/// `ECCO Geometry and Mixing Dataset Info.txt`: the paragraph after its `filename:`
/// (file names compared case-insensitively: the text writes `v4r4`).
pub fn dataset_description(info: &str, file: &str) -> Option<String> {
    let mut lines = info.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("filename:") else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case(file) {
            continue;
        }
        for l in lines.by_ref() {
            let t = l.trim();
            if t.is_empty() || t.starts_with("shortname:") {
                continue;
            }
            return Some(t.to_string());
        }
    }
    None
}

/// Builds a time-invariant granule (`factors` for lat-lon ones), with the non-finite
/// wet values of its inputs.
pub fn build(
    task: &Task,
    name: &GranuleName,
    ctx: &Context,
    factors: Option<&Arc<Factors>>,
    now: &str,
) -> Result<(DatasetDef, Found), GranuleError> {
    let geometry = name.prefix == GEOMETRY;
    let without_time = |(def, found): (DatasetDef, Found)| (drop_time(def), found);
    let (mut def, filled) = match (name.product, factors) {
        (Product::Native, _) if geometry => {
            let def = geometry_native(task, ctx)?.def(task, name, ctx, now);
            (def, Found::default())
        }
        (Product::Native, _) => without_time(native::build(task, name, ctx, now)?),
        (Product::Latlon, Some(f)) if geometry => {
            let def = geometry_latlon(task, ctx, f)?.def(task, name, ctx, now);
            (def, Found::default())
        }
        (Product::Latlon, Some(f)) => without_time(latlon::build(task, name, ctx, f, now)?),
        (Product::Latlon, None) => {
            return Err(GranuleError::Task(
                "a lat-lon granule needs mapping factors".into(),
            ))
        }
    };
    invariant_globals(&mut def.global_attrs, ctx, &name.file_name());
    Ok((def, filled))
}

/// Global attributes of a time-invariant granule: no time sampling, and the
/// dataset's own description.
fn invariant_globals(globals: &mut Attrs, ctx: &Context, file: &str) {
    globals.retain(|(k, _)| k != "time_coverage_duration" && k != "time_coverage_resolution");
    match dataset_description(&ctx.metadata.dataset_info, file) {
        Some(d) => set(globals, "summary", d.into()),
        None => log::warn!("{file}: no description in the metadata's dataset info text"),
    }
}

/// Removes the time axis of a granule built by the time-series builders: the `time`
/// and `time_bnds` variables, the `time` dimension of every variable (streamed
/// variables keep streaming) and `time` from the `coordinates` attributes.
pub fn drop_time(mut def: DatasetDef) -> DatasetDef {
    let lens: HashMap<String, usize> = def.dims.iter().cloned().collect();
    def.vars
        .retain(|v| v.name != "time" && v.name != "time_bnds");
    for v in &mut def.vars {
        if v.dims.first().map(String::as_str) != Some("time") {
            continue;
        }
        v.dims.remove(0);
        if let Some(c) = &mut v.chunks {
            c.remove(0);
        }
        let total: usize = v
            .dims
            .iter()
            .map(|d| lens.get(d).copied().unwrap_or(1))
            .product();
        if let VarData::SlabsF32 { slab_dim, produce } = &mut v.data {
            if *slab_dim > 0 {
                *slab_dim -= 1;
            } else {
                // A 2D field streamed as its one time slab: now slabs of the outermost
                // remaining dimension, cut from that one slab.
                let inner = std::mem::replace(produce, Arc::new(|_, _| Ok(())));
                // Made once, by whichever thread asks first (not under a lock: the
                // producer may use rayon, and a stolen job could want the same lock).
                let whole: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
                *produce = Arc::new(move |s, out| {
                    if whole.get().is_none() {
                        let mut w = vec![0f32; total];
                        inner(0, &mut w)?;
                        let _ = whole.set(w);
                    }
                    let whole = whole.get().ok_or("the 2D field was not produced")?;
                    let len = out.len();
                    out.copy_from_slice(&whole[s * len..(s + 1) * len]);
                    Ok(())
                });
            }
        }
        strip_coordinate(&mut v.attrs, "time");
    }
    strip_coordinate(&mut def.global_attrs, "time_bnds");
    def.dims.retain(|(d, _)| d != "time");
    if !def.vars.iter().any(|v| v.dims.iter().any(|d| d == "nv")) {
        def.dims.retain(|(d, _)| d != "nv");
    }
    def
}

fn strip_coordinate(attrs: &mut Attrs, name: &str) {
    if let Some((_, AttrValue::Str(s))) = attrs.iter_mut().find(|(k, _)| k == "coordinates") {
        *s = s
            .split_whitespace()
            .filter(|c| *c != name)
            .collect::<Vec<_>>()
            .join(" ");
    }
}

/// Where a native geometry variable comes from.
enum NativeSource {
    /// A 2D MDS grid file and the (j, i) dimensions of its point.
    Horizontal(&'static str, [&'static str; 2]),
    /// A 1D MDS grid file along a vertical dimension.
    Vertical(&'static str),
    /// The open fraction of a point type, all levels.
    Hfac(PointType),
    /// 1 where that fraction is positive, else 0.
    Mask(PointType),
}

fn native_source(name: &str) -> Option<NativeSource> {
    use NativeSource::*;
    const C: [&str; 2] = ["j", "i"];
    const U: [&str; 2] = ["j", "i_g"];
    const V: [&str; 2] = ["j_g", "i"];
    const G: [&str; 2] = ["j_g", "i_g"];
    Some(match name {
        "Depth" => Horizontal("Depth", C),
        "CS" => Horizontal("AngleCS", C),
        "SN" => Horizontal("AngleSN", C),
        "rA" => Horizontal("RAC", C),
        "rAs" => Horizontal("RAS", V),
        "rAw" => Horizontal("RAW", U),
        "rAz" => Horizontal("RAZ", G),
        "dxC" => Horizontal("DXC", U),
        "dyC" => Horizontal("DYC", V),
        "dxG" => Horizontal("DXG", V),
        "dyG" => Horizontal("DYG", U),
        "drC" => Vertical("DRC"),
        "drF" => Vertical("DRF"),
        "PHrefC" => Vertical("PHrefC"),
        "PHrefF" => Vertical("PHrefF"),
        "hFacC" => Hfac(PointType::C),
        "hFacW" => Hfac(PointType::U),
        "hFacS" => Hfac(PointType::V),
        "maskC" => Mask(PointType::C),
        "maskW" => Mask(PointType::U),
        "maskS" => Mask(PointType::V),
        _ => return None,
    })
}

/// ECCO's GEOMETRY granules hold the wet/dry masks as xarray writes a `bool`: NC_BYTE
/// 0/1 with `dtype = "bool"`, so that xarray reads them back as booleans.
fn mark_boolean(attrs: &mut Attrs) {
    attrs.retain(|(k, _)| k != "dtype");
    attrs.push(("dtype".into(), "bool".into()));
}

fn open_grid_file(dir: &Path, name: &str, var: &str) -> Result<MdsFile, GranuleError> {
    MdsFile::open(
        &dir.join(format!("{name}.data")),
        &dir.join(format!("{name}.meta")),
    )
    .map_err(|source| GranuleError::Input {
        var: var.to_string(),
        source,
    })
}

/// Vertical dimension of a 1D grid vector by its length (`k` for centres, `k_p1`
/// for faces, `k_l` for a `drC` of nz values as older MITgcm writes it).
fn vertical_dim(name: &str, len: usize, nz: usize) -> Option<&'static str> {
    match (len, name) {
        (l, _) if l == nz + 1 => Some("k_p1"),
        (l, "DRC") if l == nz => Some("k_l"),
        (l, _) if l == nz => Some("k"),
        _ => None,
    }
}

fn all_levels(grid: &Grid, p: PointType) -> Result<Vec<f32>, GranuleError> {
    let len = grid.level_len();
    let mut out = vec![0f32; grid.nz * len];
    for (k, level) in out.chunks_mut(len).enumerate() {
        grid.hfac_level(p, k, level)?;
    }
    Ok(out)
}

/// Attributes of a geometry variable from its record; GCMD keywords go to `keywords`.
fn geometry_attrs(record: &Record, coordinates: &str, keywords: &mut Vec<String>) -> Attrs {
    let mut a = Attrs::new();
    merge_variable_record(&mut a, record);
    keywords.extend(attrs::gcmd_keywords(record));
    if !coordinates.is_empty() {
        a.push(("coordinates".into(), coordinates.into()));
    }
    a
}

/// The native geometry granule: every variable of the native geometry records, from
/// the MDS grid directory.
fn geometry_native(task: &Task, ctx: &Context) -> Result<Geometry, GranuleError> {
    let grid = &ctx.grid;
    let m = &ctx.metadata;
    let (n, nz) = (grid.n, grid.nz);
    let dir = grid.source.as_path();
    if !dir.join("XC.meta").is_file() {
        return Err(GranuleError::Unsupported(format!(
            "the native geometry granule is made from an MDS grid directory (XC, RAS, RAW, RAZ, DRC, PHrefC, … .data/.meta); {} is not one",
            dir.display()
        )));
    }
    let zip = Compression {
        deflate_level: ctx.encoding.deflate_level,
        shuffle: ctx.encoding.shuffle,
    };
    let [ct, cj, ci] = native::horizontal_chunks(n);
    let coords = native::coordinates(ctx, true);
    let mut vars = coords.index;
    vars.extend(coords.geographic);
    let mut keywords = Vec::new();
    let mut referenced: Vec<&str> = Vec::new();
    for out in task.variables.keys() {
        let record = crate::metadata::record_named(&m.geometry_native, out).ok_or_else(|| {
            GranuleError::Task(format!(
                "{out} is not a variable of the native geometry metadata"
            ))
        })?;
        let source = native_source(out).ok_or_else(|| {
            GranuleError::Unsupported(format!(
                "no grid source is known for geometry variable {out}"
            ))
        })?;
        let (dims, data, chunks, coordinates): (Vec<&str>, VarData, Option<Vec<usize>>, &str) =
            match source {
                NativeSource::Horizontal(file, [jd, id]) => {
                    let f = open_grid_file(dir, file, out)?;
                    let mut v = vec![0f32; grid.level_len()];
                    f.read_level_tiles(0, 0, n, &mut v)
                        .map_err(|source| GranuleError::Input {
                            var: out.clone(),
                            source,
                        })?;
                    let coordinates = match (jd, id) {
                        ("j", "i") => "XC YC",
                        ("j_g", "i_g") => "XG YG",
                        _ => "",
                    };
                    (
                        vec!["tile", jd, id],
                        VarData::F32(v),
                        Some(vec![ct, cj, ci]),
                        coordinates,
                    )
                }
                NativeSource::Vertical(file) => {
                    let f = open_grid_file(dir, file, out)?;
                    let v = f.read_all_f64(0).map_err(|source| GranuleError::Input {
                        var: out.clone(),
                        source,
                    })?;
                    let dim =
                        vertical_dim(file, v.len(), nz).ok_or_else(|| GranuleError::Shape {
                            path: dir.join(format!("{file}.meta")),
                            what: format!("{} values, but the grid has {nz} levels", v.len()),
                        })?;
                    let coordinate = match dim {
                        "k_p1" => "Zp1",
                        "k_l" => "Zl",
                        _ => "Z",
                    };
                    (
                        vec![dim],
                        VarData::F32(v.iter().map(|x| *x as f32).collect()),
                        None,
                        coordinate,
                    )
                }
                NativeSource::Hfac(p) | NativeSource::Mask(p) => {
                    let (jd, id) = p.dim_names();
                    let values = all_levels(grid, p)?;
                    let data = match source {
                        NativeSource::Mask(_) => {
                            VarData::I8(values.iter().map(|h| i8::from(*h > 0.0)).collect())
                        }
                        _ => VarData::F32(values),
                    };
                    let coordinates = if p == PointType::C { "XC YC Z" } else { "Z" };
                    (
                        vec!["k", "tile", jd, id],
                        data,
                        Some(vec![1, ct, cj, ci]),
                        coordinates,
                    )
                }
            };
        referenced.extend(coordinates.split_whitespace());
        let is_mask = matches!(data, VarData::I8(_));
        let mut v = VarDef::new(out, &dims, data);
        v.attrs = geometry_attrs(record, coordinates, &mut keywords);
        if is_mask {
            mark_boolean(&mut v.attrs);
        }
        if chunks.is_some() {
            v.compression = Some(zip);
            v.chunks = chunks;
        }
        vars.push(v);
    }
    vars.extend(coords.bounds);
    let global_coords: Vec<&str> = [
        "XC", "YC", "XG", "YG", "XC_bnds", "YC_bnds", "Z", "Zp1", "Zu", "Zl", "Z_bnds",
    ]
    .into_iter()
    .filter(|c| !referenced.contains(c))
    .collect();
    Ok(Geometry {
        dims: native::dimensions(n, nz, true),
        vars,
        keywords,
        global_coords,
    })
}

/// Regrids one native level with level `k`'s factors; targets off the lat-lon land
/// mask of that level (or without a value) are 0. Returns the values and the mask.
fn regrid_masked(
    factors: &Factors,
    k: usize,
    src: &[f32],
) -> Result<(Vec<f32>, Vec<i8>), GranuleError> {
    let mut out = vec![0f32; factors.header.target.len()];
    apply::regrid_level(factors, k, src, &mut out, FILL_F32)?;
    let view = factors.level(k)?;
    let mut mask = vec![0i8; out.len()];
    for (t, (v, m)) in out.iter_mut().zip(mask.iter_mut()).enumerate() {
        if view.is_ocean(t) && *v != FILL_F32 {
            *m = 1;
        } else {
            *v = 0.0;
        }
    }
    Ok((out, mask))
}

/// The lat-lon geometry granule: Depth and hFacC regridded as the lat-lon products
/// are, cell areas of the target grid, the vertical spacings, and maskC per level
/// from the lat-lon land mask of the mapping factors.
fn geometry_latlon(
    task: &Task,
    ctx: &Context,
    factors: &Arc<Factors>,
) -> Result<Geometry, GranuleError> {
    let grid = &ctx.grid;
    let m = &ctx.metadata;
    let nz = grid.nz;
    let target = factors.header.target;
    latlon::factors_cover(factors, grid, true)?;
    let zip = Compression {
        deflate_level: ctx.encoding.deflate_level,
        shuffle: ctx.encoding.shuffle,
    };
    let coords = latlon::coordinates(m, grid, target, true);
    let mut vars = coords.head;
    let plane = [target.nlat, target.nlon];
    // hFacC and maskC level by level (maskC is where hFacC has a value).
    let mut hfac = Vec::with_capacity(nz * target.len());
    let mut mask = Vec::with_capacity(nz * target.len());
    let mut level = vec![0f32; grid.level_len()];
    for k in 0..nz {
        grid.hfac_level(PointType::C, k, &mut level)?;
        let (h, mk) = regrid_masked(factors, k, &level)?;
        hfac.extend(h);
        mask.extend(mk);
    }
    // drC: surface to the first centre, then centre to centre (MITgcm's definition).
    let drc: Vec<f32> = (0..nz)
        .map(|k| {
            if k == 0 {
                -grid.rc[0]
            } else {
                grid.rc[k - 1] - grid.rc[k]
            }
        })
        .map(|x| x as f32)
        .collect();
    let mut keywords = Vec::new();
    for out in task.variables.keys() {
        let record = crate::metadata::record_named(&m.geometry_latlon, out).ok_or_else(|| {
            GranuleError::Task(format!(
                "{out} is not a variable of the lat-lon geometry metadata"
            ))
        })?;
        let horizontal = ["latitude", "longitude"];
        let (dims, data): (Vec<&str>, VarData) = match out.as_str() {
            "Depth" => (
                horizontal.to_vec(),
                VarData::F32(regrid_masked(factors, 0, grid.horizontal(GridVar::Depth)?)?.0),
            ),
            "area" => (
                horizontal.to_vec(),
                VarData::F32(
                    (0..target.nlat)
                        .flat_map(|j| {
                            std::iter::repeat(target.cell_area(j) as f32).take(target.nlon)
                        })
                        .collect(),
                ),
            ),
            "drC" => (vec!["Z"], VarData::F32(drc.clone())),
            "drF" => (
                vec!["Z"],
                VarData::F32(grid.drf.iter().map(|x| *x as f32).collect()),
            ),
            "hFacC" => (
                vec!["Z", "latitude", "longitude"],
                VarData::F32(hfac.clone()),
            ),
            "maskC" => (
                vec!["Z", "latitude", "longitude"],
                VarData::I8(mask.clone()),
            ),
            other => {
                return Err(GranuleError::Unsupported(format!(
                    "no source is known for lat-lon geometry variable {other}"
                )))
            }
        };
        let coordinates = dims.join(" ");
        let is_mask = matches!(data, VarData::I8(_));
        let mut v = VarDef::new(out, &dims, data);
        v.attrs = geometry_attrs(record, &coordinates, &mut keywords);
        if is_mask {
            mark_boolean(&mut v.attrs);
        }
        if dims.len() >= 2 {
            v.compression = Some(zip);
            let mut chunks = vec![1; dims.len() - 2];
            chunks.extend(plane);
            v.chunks = Some(chunks);
        }
        vars.push(v);
    }
    vars.extend(coords.bounds);
    Ok(Geometry {
        dims: latlon::dimensions(target, nz, true),
        vars,
        keywords,
        global_coords: coords.global,
    })
}

/// What a geometry granule is made of, before its global attributes.
struct Geometry {
    /// Its dimensions (`time` included, left out of the granule).
    dims: Vec<(String, usize)>,
    vars: Vec<VarDef>,
    /// GCMD keywords of its variables.
    keywords: Vec<String>,
    /// The coordinates no variable references.
    global_coords: Vec<&'static str>,
}

impl Geometry {
    /// The granule's definition: the global attributes (naming the coordinates no
    /// variable references, sorted), and the dimensions but time.
    fn def(mut self, task: &Task, name: &GranuleName, ctx: &Context, now: &str) -> DatasetDef {
        self.global_coords.sort();
        let global_attrs = attrs::granule_globals(
            &ctx.metadata,
            task,
            name,
            self.keywords,
            now,
            &self.global_coords,
        );
        self.dims.retain(|(d, _)| d != "time");
        DatasetDef {
            dims: self.dims,
            vars: self.vars,
            global_attrs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataSet;

    #[test]
    fn descriptions_come_from_the_info_text() {
        let m = MetadataSet::embedded().unwrap();
        let d = dataset_description(
            &m.dataset_info,
            "OCEAN_3D_MIXING_COEFFS_ECCO_V4r4_latlon_0p50deg.nc",
        )
        .unwrap();
        assert!(
            d.starts_with("This dataset provides 3D coefficients"),
            "{d}"
        );
        assert!(
            d.contains("interpolated to a regular 0.5-degree grid"),
            "{d}"
        );
        let g = dataset_description(&m.dataset_info, "GRID_GEOMETRY_ECCO_V4r4_native_llc0090.nc")
            .unwrap();
        assert!(
            g.contains("lat-lon-cap 90 (llc90) native model grid"),
            "{g}"
        );
        assert!(dataset_description(&m.dataset_info, "NOPE.nc").is_none());
    }

    #[test]
    fn derived_groupings_of_v4r4() {
        let m = MetadataSet::embedded().unwrap();
        let d = &m.derived_groupings;
        let names: Vec<(Product, &str, usize)> = d
            .iter()
            .map(|g| (g.product, g.filename.as_str(), g.index))
            .collect();
        assert_eq!(
            names,
            [
                (Product::Native, GEOMETRY, 21),
                (Product::Latlon, GEOMETRY, 13),
                (Product::Latlon, "OCEAN_3D_MIXING_COEFFS", 14),
            ]
        );
        assert_eq!(d[0].fields.len(), 21);
        assert_eq!(
            d[1].fields,
            ["Depth", "area", "drC", "drF", "hFacC", "maskC"]
        );
        assert_eq!(d[2].fields, ["DIFFKR", "KAPGM", "KAPREDI"]);
        // Every native geometry variable has a grid source.
        for f in &d[0].fields {
            assert!(native_source(f).is_some(), "{f}");
        }
    }
}
