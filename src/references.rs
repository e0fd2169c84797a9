//! Virtual Zarr references (kerchunk JSON, version 1): one file per collection
//! (release × product × frequency × grouping) that makes the collection's granules one
//! Zarr v2 dataset along `time`, so xarray/fsspec read the NetCDF chunks in place,
//! without a copy and without opening every granule.
//!
//! Chunked variables point at their HDF5 chunks (zlib after shuffle, exactly what the
//! granules store, located by [`ncio::stored_chunks`]); contiguous variables (the
//! small index coordinates, `time`, `time_bnds`) are inlined as base64 values.
//! Time-invariant variables come from the first granule.
//!
//! Granules are named by absolute URLs, so a reference opens from anywhere: `file://…`
//! for a local tree, `s3://bucket/key` for one on S3 (whose granules are fetched one at
//! a time into the scratch cache to find their chunks), or `PREFIX/<release/…/file>`
//! with a `--url-prefix` where the granules will be published. The dataset attributes
//! describe the collection: `time_coverage_start`/`_end` (and `_duration`) span all of
//! its granules, `valid_min`/`valid_max` are those of all of them, and the attributes
//! that name one granule (`uuid`, `product_name`) are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::ncio::{self, AttrValue, DType, NcError, NcReader};
use crate::storage::{self, LocationError, S3Url, Storage};

/// The dimension granules are joined along.
pub const TIME: &str = "time";

/// Global attributes that identify one granule, left out of a collection's.
const GRANULE_ONLY: [&str; 2] = ["uuid", "product_name"];

/// One collection's granules, in name (= time) order.
#[derive(Debug, Clone)]
pub struct Collection {
    /// `release/product/frequency/GROUPING`, relative to the output root.
    pub name: String,
    /// The granules' keys relative to the output root, `/`-separated.
    pub granules: Vec<String>,
}

impl Collection {
    /// File name of its reference file: `GROUPING_frequency_release_product.json`.
    pub fn file_name(&self) -> String {
        let parts: Vec<&str> = self.name.split('/').collect();
        match parts.as_slice() {
            [release, product, freq, grouping] => {
                format!("{grouping}_{freq}_{release}_{product}.json")
            }
            _ => format!("{}.json", self.name.replace('/', "_")),
        }
    }
}

/// An output tree: a local directory or an S3 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    Local(PathBuf),
    S3(S3Url),
}

impl Tree {
    /// `s3://…` is S3 (then checked), anything else a local path.
    pub fn parse(loc: &str) -> Result<Tree, ReferencesError> {
        match storage::s3_url(loc) {
            None => Ok(Tree::Local(PathBuf::from(loc))),
            Some(Ok(u)) => Ok(Tree::S3(u)),
            Some(Err(e)) => Err(ReferencesError::Location {
                loc: loc.to_string(),
                source: Box::new(e.into()),
            }),
        }
    }

    /// The location `rel` below this one.
    pub fn join(&self, rel: &str) -> Tree {
        match self {
            Tree::Local(p) => Tree::Local(p.join(rel)),
            Tree::S3(u) => Tree::S3(u.join(rel)),
        }
    }
}

impl std::fmt::Display for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tree::Local(p) => write!(f, "{}", p.display()),
            Tree::S3(u) => write!(f, "{u}"),
        }
    }
}

/// Why a reference file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReferencesError {
    #[error("cannot list {path:?}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read granule")]
    Granule(#[from] NcError),
    #[error("granule {path:?} does not fit its collection: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error("cannot write {path:?}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{loc}")]
    Location {
        loc: String,
        #[source]
        source: Box<LocationError>,
    },
}

/// The collection a key `release/product/frequency/GROUPING/file.nc` belongs to.
fn collection_of(key: &str) -> Option<&str> {
    let parts: Vec<&str> = key.split('/').collect();
    (parts.len() == 5 && key.ends_with(".nc") && !storage::is_temp_name(Path::new(key)))
        .then(|| &key[..key.len() - parts[4].len() - 1])
}

fn group(keys: impl IntoIterator<Item = String>) -> Vec<Collection> {
    let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in keys {
        if let Some(c) = collection_of(&k) {
            by_dir.entry(c.to_string()).or_default().push(k);
        }
    }
    by_dir
        .into_iter()
        .map(|(name, mut granules)| {
            granules.sort();
            Collection { name, granules }
        })
        .collect()
}

/// Collections under a local `dest`: every directory `release/product/frequency/GROUPING`
/// holding `.nc` granules.
pub fn find_collections(dest: &Path) -> Result<Vec<Collection>, ReferencesError> {
    let mut keys = Vec::new();
    for entry in walkdir::WalkDir::new(dest).min_depth(5).max_depth(5) {
        let entry = entry.map_err(|e| ReferencesError::List {
            path: e.path().unwrap_or(dest).to_path_buf(),
            source: e.into(),
        })?;
        if entry.file_type().is_file() {
            keys.push(crate::run::verify::relative(dest, entry.path()));
        }
    }
    Ok(group(keys))
}

/// Collections of a tree, local or on S3 (one listing of the prefix).
pub fn collections(tree: &Tree, storage: &Storage) -> Result<Vec<Collection>, ReferencesError> {
    match tree {
        Tree::Local(dir) => find_collections(dir),
        Tree::S3(url) => {
            let objects =
                storage
                    .s3()
                    .objects_under(url)
                    .map_err(|e| ReferencesError::Location {
                        loc: url.to_string(),
                        source: Box::new(e.into()),
                    })?;
            Ok(group(objects.into_keys()))
        }
    }
}

/// Where the granules of a tree are read from and what URLs name them.
pub struct Source<'a> {
    pub tree: Tree,
    /// Replaces the tree's own location in the URLs (`PREFIX/<key>`).
    pub url_prefix: Option<String>,
    pub storage: &'a Storage,
}

impl Source<'_> {
    /// The URL a reference names granule `key` by.
    pub fn url(&self, key: &str) -> String {
        if let Some(p) = &self.url_prefix {
            return format!("{}/{key}", p.trim_end_matches('/'));
        }
        match &self.tree {
            Tree::Local(dir) => {
                let p = dir.join(key);
                let abs = std::fs::canonicalize(&p)
                    .or_else(|_| std::path::absolute(&p))
                    .unwrap_or(p);
                format!("file://{}", abs.display())
            }
            Tree::S3(u) => u.join(key).to_string(),
        }
    }

    /// A local file of granule `key`, and whether it is a temporary copy to remove.
    fn fetch(&self, key: &str) -> Result<(PathBuf, bool), ReferencesError> {
        match &self.tree {
            Tree::Local(dir) => Ok((dir.join(key), false)),
            Tree::S3(u) => {
                let url = u.join(key);
                let fail = |e: LocationError| ReferencesError::Location {
                    loc: url.to_string(),
                    source: Box::new(e),
                };
                let local = self.storage.staging_path(&url).map_err(fail)?;
                self.storage
                    .s3()
                    .download(&url, &local)
                    .map_err(|e| fail(e.into()))?;
                Ok((local, true))
            }
        }
    }
}

/// A granule's local file, removed on drop when it is a temporary copy.
struct Fetched(PathBuf, bool);

impl Drop for Fetched {
    fn drop(&mut self) {
        if self.1 {
            storage::discard(&self.0);
        }
    }
}

/// One variable as the first granule defines it.
struct VarInfo {
    name: String,
    dtype: DType,
    dims: Vec<String>,
    /// Shape in one granule.
    shape: Vec<usize>,
    attrs: Vec<(String, AttrValue)>,
    fill: Option<AttrValue>,
    /// Chunk shape, deflate level, shuffle; `None` when contiguous (inlined).
    chunked: Option<(Vec<usize>, Option<u8>, bool)>,
}

impl VarInfo {
    fn timed(&self) -> bool {
        self.dims.first().map(String::as_str) == Some(TIME)
    }
}

fn vars_of(r: &NcReader) -> Result<Vec<VarInfo>, NcError> {
    let lens: BTreeMap<String, usize> = r.dims().into_iter().collect();
    let mut out = Vec::new();
    for name in r.var_names() {
        let dims = r.var_dims(&name)?;
        let shape = dims
            .iter()
            .map(|d| lens.get(d).copied().unwrap_or(0))
            .collect();
        let mut attrs = r.var_attrs(&name)?;
        let fill = attrs
            .iter()
            .position(|(k, _)| k == "_FillValue")
            .map(|i| attrs.remove(i).1);
        let storage = r.var_storage(&name)?;
        out.push(VarInfo {
            dtype: r.var_type(&name)?,
            chunked: storage
                .chunking
                .map(|c| (c, storage.deflate, storage.shuffle)),
            name,
            dims,
            shape,
            attrs,
            fill,
        });
    }
    Ok(out)
}

fn attr_json(v: &AttrValue) -> Value {
    let num = |x: f64| {
        if x.is_finite() {
            json!(x)
        } else {
            Value::Null
        }
    };
    match v {
        AttrValue::Str(s) => json!(s),
        AttrValue::F32(x) => num(*x as f64),
        AttrValue::F64(x) => num(*x),
        AttrValue::I32(x) => json!(x),
        AttrValue::F64s(v) => Value::Array(v.iter().map(|x| num(*x)).collect()),
        AttrValue::F32s(v) => Value::Array(v.iter().map(|x| num(*x as f64)).collect()),
        AttrValue::I32s(v) => json!(v),
    }
}

/// A Zarr v2 fill value (non-finite floats as the strings Zarr uses).
fn fill_json(v: Option<&AttrValue>) -> Value {
    let float = |x: f64| {
        if x.is_nan() {
            json!("NaN")
        } else if x == f64::INFINITY {
            json!("Infinity")
        } else if x == f64::NEG_INFINITY {
            json!("-Infinity")
        } else {
            json!(x)
        }
    };
    match v {
        Some(AttrValue::F32(x)) => float(*x as f64),
        Some(AttrValue::F64(x)) => float(*x),
        Some(AttrValue::I32(x)) => json!(x),
        _ => Value::Null,
    }
}

fn attrs_json(attrs: &[(String, AttrValue)]) -> Map<String, Value> {
    attrs
        .iter()
        .map(|(k, v)| (k.clone(), attr_json(v)))
        .collect()
}

fn dtype_code(d: DType) -> &'static str {
    match d {
        DType::F32 => "f4",
        DType::F64 => "f8",
        DType::I32 => "i4",
        DType::I8 => "i1",
    }
}

/// Little-endian bytes of a whole variable.
fn le_bytes(r: &NcReader, v: &VarInfo) -> Result<Vec<u8>, NcError> {
    fn le<T, const N: usize>(values: Vec<T>, to_le: fn(T) -> [u8; N]) -> Vec<u8> {
        values.into_iter().flat_map(to_le).collect()
    }
    Ok(match v.dtype {
        DType::F32 => le(r.read_f32(&v.name)?, f32::to_le_bytes),
        DType::F64 => le(r.read_f64(&v.name)?, f64::to_le_bytes),
        DType::I32 => le(r.read_i32(&v.name)?, i32::to_le_bytes),
        DType::I8 => le(r.read_i8(&v.name)?, i8::to_le_bytes),
    })
}

fn chunk_key(name: &str, idx: &[u64]) -> String {
    if idx.is_empty() {
        return format!("{name}/0");
    }
    let parts: Vec<String> = idx.iter().map(u64::to_string).collect();
    format!("{name}/{}", parts.join("."))
}

/// The kerchunk references of `c`, its granules read through `src` and named by
/// [`Source::url`].
pub fn build(c: &Collection, src: &Source<'_>) -> Result<Value, ReferencesError> {
    if c.granules.is_empty() {
        return Err(ReferencesError::Mismatch {
            path: PathBuf::from(&c.name),
            reason: "no granules".to_string(),
        });
    }
    let mut refs = Map::new();
    refs.insert(
        ".zgroup".into(),
        json!(json!({"zarr_format": 2}).to_string()),
    );
    let mut vars: Vec<VarInfo> = Vec::new();
    let mut globals: Vec<(String, AttrValue)> = Vec::new();
    let mut last_end: Option<AttrValue> = None;
    // Inlined values of contiguous variables, per variable, granule after granule.
    let mut inline: Vec<Vec<u8>> = Vec::new();
    let mut t_total = 0usize;
    for (g, key) in c.granules.iter().enumerate() {
        let (local, temporary) = src.fetch(key)?;
        let fetched = Fetched(local, temporary);
        let path = &fetched.0;
        let t_len;
        {
            let r = NcReader::open(path)?;
            let here = vars_of(&r)?;
            let these_globals = r.global_attrs()?;
            last_end = these_globals
                .iter()
                .find(|(k, _)| k == "time_coverage_end")
                .map(|(_, v)| v.clone());
            if g == 0 {
                vars = here;
                globals = these_globals;
                inline = vec![Vec::new(); vars.len()];
                for (i, v) in vars.iter().enumerate() {
                    if v.chunked.is_none() {
                        inline[i].extend(le_bytes(&r, v)?);
                    }
                }
                t_len = r.dims().iter().find(|(d, _)| d == TIME).map(|d| d.1);
            } else {
                let mismatch = |reason: String| ReferencesError::Mismatch {
                    path: PathBuf::from(key),
                    reason,
                };
                if here.len() != vars.len() {
                    return Err(mismatch(count_mismatch(&here, &vars, &c.granules[0])));
                }
                t_len = r.dims().iter().find(|(d, _)| d == TIME).map(|d| d.1);
                for (i, (v, h)) in vars.iter_mut().zip(&here).enumerate() {
                    let same = v.name == h.name
                        && v.dims == h.dims
                        && v.dtype == h.dtype
                        && v.shape.get(1..) == h.shape.get(1..)
                        && (v.timed() || v.shape == h.shape)
                        && v.chunked == h.chunked;
                    if !same {
                        return Err(mismatch(format!(
                            "variable `{}` differs from the first granule's \
                             (name, dimensions, type, shape or storage)",
                            h.name
                        )));
                    }
                    widen_valid_range(&mut v.attrs, &h.attrs);
                    if v.chunked.is_none() && v.timed() {
                        inline[i].extend(le_bytes(&r, h)?);
                    }
                }
            }
        }
        let t_len = t_len.unwrap_or(0);
        // Chunk locations (NcReader closed: HDF5 opens the file on its own).
        let at = GranuleAt {
            first: g == 0,
            t_total,
            key,
            url: src.url(key),
        };
        chunk_refs(&mut refs, &vars, path, &at)?;
        t_total += t_len;
    }
    refs.insert(
        ".zattrs".into(),
        json!(Value::Object(attrs_json(&collection_globals(globals, last_end))).to_string()),
    );
    variable_refs(&mut refs, &vars, inline, t_total);
    Ok(json!({"version": 1, "refs": refs}))
}

/// The first granule's name, when another has a different number of variables: which
/// variables only one of the two has.
fn count_mismatch(here: &[VarInfo], vars: &[VarInfo], first: &str) -> String {
    let names = |a: &[VarInfo], b: &[VarInfo]| -> String {
        let odd: Vec<&str> = a
            .iter()
            .filter(|v| !b.iter().any(|w| w.name == v.name))
            .map(|v| v.name.as_str())
            .collect();
        if odd.is_empty() {
            "none".into()
        } else {
            odd.join(", ")
        }
    };
    format!(
        "{} variables, the first granule ({first}) has {}; only here: {}; only there: {}",
        here.len(),
        vars.len(),
        names(here, vars),
        names(vars, here)
    )
}

/// Where one granule stands in the collection.
struct GranuleAt<'a> {
    first: bool,
    /// Time steps of the granules before it.
    t_total: usize,
    key: &'a str,
    url: String,
}

/// The references of the chunks a granule stores (all its chunked variables' for the
/// first granule, the timed ones' for the others).
fn chunk_refs(
    refs: &mut Map<String, Value>,
    vars: &[VarInfo],
    path: &Path,
    at: &GranuleAt<'_>,
) -> Result<(), ReferencesError> {
    let chunked: Vec<&VarInfo> = vars
        .iter()
        .filter(|v| v.chunked.is_some() && (at.first || v.timed()))
        .collect();
    let asked: Vec<(&str, usize)> = chunked
        .iter()
        .map(|v| (v.name.as_str(), v.dims.len()))
        .collect();
    let stored = ncio::stored_chunks(path, &asked)?;
    for (v, s) in chunked.iter().zip(stored) {
        let Some((chunks, _, _)) = &v.chunked else {
            continue;
        };
        if at.first {
            let zarray = zarray(v, s.little_endian);
            refs.insert(format!("{}/.zarray", v.name), json!(zarray.to_string()));
        }
        if v.timed() && chunks[0] > 0 && at.t_total % chunks[0] != 0 {
            return Err(ReferencesError::Mismatch {
                path: PathBuf::from(at.key),
                reason: format!(
                    "variable `{}`: time chunk {} does not divide the granule's start {}",
                    v.name, chunks[0], at.t_total
                ),
            });
        }
        for loc in s.chunks {
            let mut idx: Vec<u64> = loc
                .offset
                .iter()
                .zip(chunks)
                .map(|(o, c)| o / (*c).max(1) as u64)
                .collect();
            if v.timed() {
                idx[0] += (at.t_total / chunks[0].max(1)) as u64;
            }
            refs.insert(
                chunk_key(&v.name, &idx),
                json!([at.url.clone(), loc.addr, loc.size]),
            );
        }
    }
    Ok(())
}

/// Each variable's `.zarray` (the time length known only now, contiguous variables
/// inlined) and `.zattrs`.
fn variable_refs(
    refs: &mut Map<String, Value>,
    vars: &[VarInfo],
    inline: Vec<Vec<u8>>,
    t_total: usize,
) {
    let engine = base64::engine::general_purpose::STANDARD;
    for (v, bytes) in vars.iter().zip(inline) {
        let mut shape = v.shape.clone();
        if v.timed() {
            shape[0] = t_total;
        }
        if v.chunked.is_none() {
            let chunks: Vec<usize> = shape.iter().map(|n| (*n).max(1)).collect();
            let zarray = json!({
                "zarr_format": 2, "shape": shape, "chunks": chunks,
                "dtype": format!("<{}", dtype_code(v.dtype)),
                "compressor": null, "filters": null,
                "fill_value": fill_json(v.fill.as_ref()), "order": "C",
            });
            refs.insert(format!("{}/.zarray", v.name), json!(zarray.to_string()));
            let key = chunk_key(&v.name, &vec![0; shape.len()]);
            refs.insert(key, json!(format!("base64:{}", engine.encode(bytes))));
        } else if let Some(Value::String(s)) = refs.get(&format!("{}/.zarray", v.name)) {
            // The shape along time is known only now.
            let mut z: Value = serde_json::from_str(s).unwrap_or(Value::Null);
            z["shape"] = json!(shape);
            refs.insert(format!("{}/.zarray", v.name), json!(z.to_string()));
        }
        let mut zattrs = attrs_json(&v.attrs);
        zattrs.insert("_ARRAY_DIMENSIONS".into(), json!(v.dims));
        refs.insert(
            format!("{}/.zattrs", v.name),
            json!(Value::Object(zattrs).to_string()),
        );
    }
}

/// `valid_min`/`valid_max` of `acc` widened to cover `other`'s (same type kept).
fn widen_valid_range(acc: &mut [(String, AttrValue)], other: &[(String, AttrValue)]) {
    for (key, wider) in [
        ("valid_min", f64::lt as fn(&f64, &f64) -> bool),
        ("valid_max", f64::gt),
    ] {
        let theirs = other.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let Some(slot) = acc.iter_mut().find(|(k, _)| k == key) else {
            continue;
        };
        if let (Some(t), Some(a)) = (theirs.and_then(AttrValue::as_f64), slot.1.as_f64()) {
            if wider(&t, &a) {
                if let Some(v) = theirs {
                    if std::mem::discriminant(v) == std::mem::discriminant(&slot.1) {
                        slot.1 = v.clone();
                    }
                }
            }
        }
    }
}

/// The first granule's global attributes made the collection's: its time coverage
/// ends where the last granule's does (`last_end`), with the duration between; the
/// attributes of one granule alone are left out.
fn collection_globals(
    mut globals: Vec<(String, AttrValue)>,
    last_end: Option<AttrValue>,
) -> Vec<(String, AttrValue)> {
    globals.retain(|(k, _)| !GRANULE_ONLY.contains(&k.as_str()));
    let text = |v: &AttrValue| match v {
        AttrValue::Str(s) => Some(s.clone()),
        _ => None,
    };
    let start = globals
        .iter()
        .find(|(k, _)| k == "time_coverage_start")
        .and_then(|(_, v)| text(v));
    let end = last_end.as_ref().and_then(text);
    if let Some(end) = &end {
        if let Some(slot) = globals.iter_mut().find(|(k, _)| k == "time_coverage_end") {
            slot.1 = AttrValue::Str(end.clone());
        }
    }
    let span = match (start, end) {
        (Some(s), Some(e)) => match (
            crate::time::Instant::parse(&s),
            crate::time::Instant::parse(&e),
        ) {
            (Ok(s), Ok(e)) if e.0 >= s.0 => Some(iso_duration(e.0 - s.0)),
            _ => None,
        },
        _ => None,
    };
    if let (Some(d), Some(slot)) = (
        span,
        globals
            .iter_mut()
            .find(|(k, _)| k == "time_coverage_duration"),
    ) {
        // A snapshot collection (P0S per granule) still spans its first to last instant.
        slot.1 = AttrValue::Str(d);
    }
    globals
}

/// ISO 8601 duration of whole seconds: `P45DT12H`, `PT0S`.
fn iso_duration(seconds: i64) -> String {
    let (d, rest) = (seconds / 86400, seconds % 86400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let mut out = String::from("P");
    if d > 0 {
        out += &format!("{d}D");
    }
    if rest > 0 || d == 0 {
        out.push('T');
        if h > 0 {
            out += &format!("{h}H");
        }
        if m > 0 {
            out += &format!("{m}M");
        }
        if s > 0 || rest == 0 {
            out += &format!("{s}S");
        }
    }
    out
}

/// `.zarray` of a chunked variable, with its one-granule shape.
fn zarray(v: &VarInfo, little_endian: bool) -> Value {
    let (chunks, deflate, shuffle) = v.chunked.clone().unwrap_or_default();
    let size = match v.dtype {
        DType::F64 => 8,
        DType::I8 => 1,
        DType::F32 | DType::I32 => 4,
    };
    json!({
        "zarr_format": 2,
        "shape": v.shape,
        "chunks": chunks,
        "dtype": format!("{}{}", if little_endian { "<" } else { ">" }, dtype_code(v.dtype)),
        "compressor": deflate.map(|l| json!({"id": "zlib", "level": l})),
        "filters": if shuffle { json!([{"id": "shuffle", "elementsize": size}]) } else { Value::Null },
        "fill_value": fill_json(v.fill.as_ref()),
        "order": "C",
    })
}

/// Writes one reference file per collection of `src`'s tree into `out` (a local
/// directory or an S3 prefix); returns per collection the file written (with its
/// granule count) or why it failed. One failing collection does not stop the others.
#[allow(clippy::type_complexity)]
pub fn write_all(
    src: &Source<'_>,
    out: &Tree,
) -> Result<Vec<(Collection, Result<Tree, ReferencesError>)>, ReferencesError> {
    let collections = collections(&src.tree, src.storage)?;
    if let Tree::Local(dir) = out {
        std::fs::create_dir_all(dir).map_err(|source| ReferencesError::Write {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(collections
        .into_iter()
        .map(|c| {
            let target = out.join(&c.file_name());
            let done = build(&c, src).and_then(|refs| match &target {
                Tree::Local(path) => write_json(path, &refs),
                Tree::S3(url) => src
                    .storage
                    .s3()
                    .put_bytes(url, refs.to_string().into_bytes())
                    .map(|_| ())
                    .map_err(|e| ReferencesError::Location {
                        loc: url.to_string(),
                        source: Box::new(e.into()),
                    }),
            });
            (c, done.map(|()| target))
        })
        .collect())
}

/// Writes atomically: a temporary name, then a rename.
fn write_json(path: &Path, v: &Value) -> Result<(), ReferencesError> {
    let temp = path.with_extension("json.part");
    let fail = |source| ReferencesError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&temp, v.to_string()).map_err(fail)?;
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        fail(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_into_collections_and_durations_read_as_iso() {
        assert_eq!(chunk_key("SSH", &[3, 0, 0, 0]), "SSH/3.0.0.0");
        assert_eq!(chunk_key("s", &[]), "s/0");
        let c = group(
            [
                "V4r4/native/mon_mean/SSH/b.nc",
                "V4r4/native/mon_mean/SSH/a.nc",
                "V4r4/native/mon_mean/SSH/a.nc.part",
                "V4r4/native/mon_mean/edp-manifest.json",
                "edp-manifest.json",
                "V4r4/1D/snap/SBO_CORE_PRODUCTS/s.nc",
            ]
            .map(String::from),
        );
        let names: Vec<(&str, usize)> = c
            .iter()
            .map(|c| (c.name.as_str(), c.granules.len()))
            .collect();
        assert_eq!(
            names,
            [
                ("V4r4/1D/snap/SBO_CORE_PRODUCTS", 1),
                ("V4r4/native/mon_mean/SSH", 2)
            ]
        );
        assert_eq!(c[1].granules[0], "V4r4/native/mon_mean/SSH/a.nc");
        assert_eq!(iso_duration(0), "PT0S");
        assert_eq!(iso_duration(90 * 86400 + 12 * 3600), "P90DT12H");
        assert_eq!(iso_duration(86400), "P1D");
    }

    #[test]
    fn collection_attributes_span_the_granules() {
        let s = |x: &str| AttrValue::Str(x.into());
        let g = collection_globals(
            vec![
                ("time_coverage_duration".into(), s("P1M")),
                ("time_coverage_end".into(), s("1992-02-01T00:00:00")),
                ("time_coverage_start".into(), s("1992-01-01T12:00:00")),
                ("uuid".into(), s("u")),
            ],
            Some(s("1992-04-01T00:00:00")),
        );
        assert_eq!(
            g,
            vec![
                ("time_coverage_duration".into(), s("P90DT12H")),
                ("time_coverage_end".into(), s("1992-04-01T00:00:00")),
                ("time_coverage_start".into(), s("1992-01-01T12:00:00")),
            ]
        );
        let mut a = vec![
            ("valid_min".to_string(), AttrValue::F32(-1.0)),
            ("valid_max".to_string(), AttrValue::F32(1.0)),
        ];
        widen_valid_range(
            &mut a,
            &[
                ("valid_min".to_string(), AttrValue::F32(-2.0)),
                ("valid_max".to_string(), AttrValue::F32(0.5)),
            ],
        );
        assert_eq!(a[0].1, AttrValue::F32(-2.0));
        assert_eq!(a[1].1, AttrValue::F32(1.0));
    }
}
