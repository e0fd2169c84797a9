//! Virtual Zarr references (kerchunk JSON, version 1): one file per collection
//! (release × product × frequency × grouping) that makes the collection's granules one
//! Zarr v2 dataset along `time`, so xarray/fsspec read the NetCDF chunks in place,
//! without a copy and without opening every granule.
//!
//! Chunked variables point at their HDF5 chunks (zlib after shuffle, exactly what the
//! granules store, located by [`ncio::stored_chunks`]); contiguous variables (the
//! small index coordinates, `time`, `time_bnds`) are inlined as base64 values.
//! Time-invariant variables come from the first granule.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::ncio::{self, AttrValue, DType, NcError, NcReader};

/// The dimension granules are joined along.
pub const TIME: &str = "time";

/// One collection's granules, in name (= time) order.
#[derive(Debug, Clone)]
pub struct Collection {
    /// `release/product/frequency/GROUPING`, relative to the output root.
    pub name: String,
    pub granules: Vec<PathBuf>,
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
}

/// Collections under `dest`: every directory `release/product/frequency/GROUPING`
/// holding `.nc` granules.
pub fn find_collections(dest: &Path) -> Result<Vec<Collection>, ReferencesError> {
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dest).min_depth(5).max_depth(5) {
        let entry = entry.map_err(|e| ReferencesError::List {
            path: e.path().unwrap_or(dest).to_path_buf(),
            source: e.into(),
        })?;
        let p = entry.path();
        if entry.file_type().is_file() && p.extension().is_some_and(|x| x == "nc") {
            if let Some(dir) = p.parent() {
                by_dir
                    .entry(dir.to_path_buf())
                    .or_default()
                    .push(p.to_path_buf());
            }
        }
    }
    Ok(by_dir
        .into_iter()
        .map(|(dir, mut granules)| {
            granules.sort();
            let name = dir
                .strip_prefix(dest)
                .unwrap_or(&dir)
                .to_string_lossy()
                .into_owned();
            Collection { name, granules }
        })
        .collect())
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
    }
}

/// Little-endian bytes of a whole variable.
fn le_bytes(r: &NcReader, v: &VarInfo) -> Result<Vec<u8>, NcError> {
    Ok(match v.dtype {
        DType::F32 => r
            .read_f32(&v.name)?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::F64 => r
            .read_f64(&v.name)?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::I32 => r
            .read_i32(&v.name)?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    })
}

/// `to` relative to directory `from` (both absolute, or both relative to one place).
fn relative(to: &Path, from: &Path) -> PathBuf {
    let t: Vec<Component> = to.components().collect();
    let f: Vec<Component> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

fn chunk_key(name: &str, idx: &[u64]) -> String {
    if idx.is_empty() {
        return format!("{name}/0");
    }
    let parts: Vec<String> = idx.iter().map(u64::to_string).collect();
    format!("{name}/{}", parts.join("."))
}

/// The kerchunk references of `c`, granule paths written relative to directory `base`
/// (where the reference file goes; both made absolute first).
pub fn build(c: &Collection, base: &Path) -> Result<Value, ReferencesError> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let base = abs(base);
    let first = c
        .granules
        .first()
        .ok_or_else(|| ReferencesError::Mismatch {
            path: PathBuf::from(&c.name),
            reason: "no granules".to_string(),
        })?;
    let (vars, globals) = {
        let r = NcReader::open(first)?;
        (vars_of(&r)?, r.global_attrs()?)
    };
    let mut refs = Map::new();
    refs.insert(
        ".zgroup".into(),
        json!(json!({"zarr_format": 2}).to_string()),
    );
    refs.insert(
        ".zattrs".into(),
        json!(Value::Object(attrs_json(&globals)).to_string()),
    );
    // Inlined values of contiguous variables, per variable, granule after granule.
    let mut inline: Vec<Vec<u8>> = vec![Vec::new(); vars.len()];
    let mut t_total = 0usize;
    for (g, path) in c.granules.iter().enumerate() {
        let t_len;
        {
            let r = NcReader::open(path)?;
            let here = vars_of(&r)?;
            let mismatch = |reason: String| ReferencesError::Mismatch {
                path: path.clone(),
                reason,
            };
            if here.len() != vars.len() {
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
                return Err(mismatch(format!(
                    "{} variables, the first granule ({}) has {}; only here: {}; only there: {}",
                    here.len(),
                    c.granules[0].display(),
                    vars.len(),
                    names(&here, &vars),
                    names(&vars, &here)
                )));
            }
            t_len = r.dims().iter().find(|(d, _)| d == TIME).map(|d| d.1);
            for (i, (v, h)) in vars.iter().zip(&here).enumerate() {
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
                if v.chunked.is_none() && (g == 0 || v.timed()) {
                    inline[i].extend(le_bytes(&r, h)?);
                }
            }
        }
        let t_len = t_len.unwrap_or(0);
        // Chunk locations (NcReader closed: HDF5 opens the file on its own).
        let chunked: Vec<&VarInfo> = vars
            .iter()
            .filter(|v| v.chunked.is_some() && (g == 0 || v.timed()))
            .collect();
        let asked: Vec<(&str, usize)> = chunked
            .iter()
            .map(|v| (v.name.as_str(), v.dims.len()))
            .collect();
        let stored = ncio::stored_chunks(path, &asked)?;
        let rel = relative(&abs(path), &base).to_string_lossy().into_owned();
        for (v, s) in chunked.iter().zip(stored) {
            let Some((chunks, _, _)) = &v.chunked else {
                continue;
            };
            if g == 0 {
                let zarray = zarray(v, s.little_endian);
                refs.insert(format!("{}/.zarray", v.name), json!(zarray.to_string()));
            }
            if v.timed() && chunks[0] > 0 && t_total % chunks[0] != 0 {
                return Err(ReferencesError::Mismatch {
                    path: path.clone(),
                    reason: format!(
                        "variable `{}`: time chunk {} does not divide the granule's start {t_total}",
                        v.name, chunks[0]
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
                    idx[0] += (t_total / chunks[0].max(1)) as u64;
                }
                refs.insert(
                    chunk_key(&v.name, &idx),
                    json!([rel.clone(), loc.addr, loc.size]),
                );
            }
        }
        t_total += t_len;
    }
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
    Ok(json!({"version": 1, "refs": refs}))
}

/// `.zarray` of a chunked variable, with its one-granule shape.
fn zarray(v: &VarInfo, little_endian: bool) -> Value {
    let (chunks, deflate, shuffle) = v.chunked.clone().unwrap_or_default();
    let size = match v.dtype {
        DType::F64 => 8,
        _ => 4,
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

/// Writes one reference file per collection under `dest` into `out_dir`; returns per
/// collection the file written (with its granule count) or why it failed. One failing
/// collection does not stop the others.
#[allow(clippy::type_complexity)]
pub fn write_all(
    dest: &Path,
    out_dir: &Path,
) -> Result<Vec<(Collection, Result<PathBuf, ReferencesError>)>, ReferencesError> {
    let collections = find_collections(dest)?;
    std::fs::create_dir_all(out_dir).map_err(|source| ReferencesError::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    Ok(collections
        .into_iter()
        .map(|c| {
            let target = out_dir.join(c.file_name());
            let done = build(&c, out_dir).and_then(|refs| write_json(&target, &refs));
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
    fn relative_paths_climb_out_of_the_reference_directory() {
        assert_eq!(
            relative(Path::new("/d/V4r4/native/a.nc"), Path::new("/d/references")),
            PathBuf::from("../V4r4/native/a.nc")
        );
        assert_eq!(chunk_key("SSH", &[3, 0, 0, 0]), "SSH/3.0.0.0");
        assert_eq!(chunk_key("s", &[]), "s/0");
    }
}
