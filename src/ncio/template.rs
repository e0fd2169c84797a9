//! Header templates: netCDF-C defines a dataset's header once per definition, not once
//! per granule.
//!
//! Defining a granule's header through netCDF-C (dimensions, dimension scales, every
//! variable and attribute: `nc4_rec_write_metadata` at the end of define mode) was
//! about half of a small granule's cost, and every granule of a grouping × product ×
//! frequency defines the same header with only a few attribute values changed (times,
//! uuid, product name, `valid_min`/`valid_max`). So the first granule of a definition
//! is defined by netCDF-C as before, closed before any value is written, and its bytes
//! kept as the template of that definition (in memory, [`CACHE`]). A later granule
//! whose definition differs only in attribute *values* of the same type and byte length
//! (the [`shape_key`] is equal) and in its data is made by copying the template under
//! its temporary name and overwriting in place, through HDF5, the attributes whose
//! values differ (each keeps its place in creation order). The template also holds the
//! values of the variables the direct chunk writer does not take (coordinates, times:
//! written with `H5Dwrite` after the define), so a granule rewrites only those that
//! differ (`time`, `time_bnds`). The file is then left open for the chunk writer
//! ([`ffi::H5File::park`]). Everything else (different lengths of a text attribute,
//! streamed values put by netCDF-C, files written by a group of ranks) goes the full
//! way ([`super::write::define_and_put`]). The file's content is what the full define
//! gives (`ncdump` prints the same header and values); on the LLC8 SSH granules even
//! the bytes are the same but for the changed values.
//!
//! `EDP_DEBUG_NO_HEADER_TEMPLATE` (hidden setting) defines every granule in full: the
//! benchmark's same-run reference.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use super::layout::Layout;
use super::{ffi, write, AttrValue, DatasetDef, NcError, Values, VarData};

/// Templates kept at most: a release has a few hundred definitions (grouping ×
/// product × frequency), met mostly one after the other; past this the cache starts
/// over.
const MAX_TEMPLATES: usize = 64;

/// Bytes of values (of the variables the direct writer does not take: coordinates,
/// times) a template keeps at most; a definition with more is defined in full.
const MAX_KEPT_VALUES: usize = 1 << 20;

/// One definition's header, defined by netCDF-C with no value written, and the
/// attribute values it holds.
struct Template {
    bytes: Vec<u8>,
    global_attrs: Vec<(String, AttrValue)>,
    var_attrs: Vec<Vec<(String, AttrValue)>>,
    /// The values of the variables that are not direct (`None` for the direct ones),
    /// written in the template: a granule rewrites only those that differ.
    values: Vec<Option<Values>>,
}

/// The templates of this process, by [`shape_key`].
static CACHE: OnceLock<Mutex<HashMap<String, Arc<Template>>>> = OnceLock::new();

fn cache() -> &'static Mutex<HashMap<String, Arc<Template>>> {
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether templates are used (off with `EDP_DEBUG_NO_HEADER_TEMPLATE`).
fn enabled() -> bool {
    !super::write_hooks().no_header_template
}

/// Creates the netCDF file at `temp` with `def`'s header, puts the values of the
/// variables that are not [`Layout::direct`] and closes it, from the definition's template when
/// there is one (see the module text); `path` (the final name) is what errors report.
/// Same contract as [`write::define_and_put`], which it falls back to.
pub(super) fn define_and_put(
    def: DatasetDef,
    layout: &Layout,
    temp: &Path,
    path: &Path,
) -> Result<(), NcError> {
    let direct = &layout.direct[..];
    if !enabled() || !templatable(&def, direct) {
        return write::define_and_put(def, layout, temp, path);
    }
    let key = shape_key(&def, direct);
    let found = cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    let file = match found {
        Some(t) => {
            copy_template(&t.bytes, temp, path)?;
            fill(def, direct, &t, temp, path)?
        }
        None => {
            let (t, file) = define_template(def, direct, temp, path)?;
            let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_TEMPLATES {
                cache.clear();
            }
            cache.insert(key, Arc::new(t));
            file
        }
    };
    // The chunk writer takes it from here.
    file.park(temp);
    Ok(())
}

/// Whether the values netCDF-C would put (the variables that are not `direct`) are all
/// in memory, so that HDF5 can write them whole, and small enough to be kept in a
/// template ([`MAX_KEPT_VALUES`]).
fn templatable(def: &DatasetDef, direct: &[bool]) -> bool {
    let mut bytes = 0;
    def.vars.iter().zip(direct).all(|(v, &d)| {
        let held = match &v.data {
            _ if d => Some(0),
            VarData::F32(x) => Some(x.len() * 4),
            VarData::F64(x) => Some(x.len() * 8),
            VarData::I32(x) => Some(x.len() * 4),
            VarData::I8(x) => Some(x.len()),
            VarData::Shared(x) => x.values().map(|x| match x {
                Values::F32(x) => x.len() * 4,
                Values::F64(x) => x.len() * 8,
                Values::I32(x) => x.len() * 4,
                Values::I8(x) => x.len(),
            }),
            VarData::SlabsF32 { .. } | VarData::GroupF32 { .. } => None,
        };
        bytes += held.unwrap_or(usize::MAX / 2);
        held.is_some() && bytes <= MAX_KEPT_VALUES
    })
}

/// The values of `data` when they are in memory.
fn in_memory(data: VarData) -> Option<Values> {
    Some(match data {
        VarData::F32(x) => Values::F32(x),
        VarData::F64(x) => Values::F64(x),
        VarData::I32(x) => Values::I32(x),
        VarData::I8(x) => Values::I8(x),
        // Shared values of a variable the direct writer does not take: small
        // coordinates, copied once.
        VarData::Shared(x) => x.values()?.clone(),
        VarData::SlabsF32 { .. } | VarData::GroupF32 { .. } => return None,
    })
}

/// Everything of `def` that shapes its netCDF-4 header except attribute values:
/// dimensions; each variable's name, type, dimensions, fill value, compression,
/// chunks and whether the direct writer takes it; and each attribute's name, type
/// and size (text: bytes; numbers: count). Two definitions with the same key have
/// headers that differ only in attribute values of the same stored size.
fn shape_key(def: &DatasetDef, direct: &[bool]) -> String {
    let mut key = format!("{:?}", def.dims);
    let attrs = |key: &mut String, list: &[(String, AttrValue)]| {
        for (name, value) in list {
            let _ = write!(key, ";{name}:{}", kind(value));
        }
    };
    attrs(&mut key, &def.global_attrs);
    for (v, d) in def.vars.iter().zip(direct) {
        let _ = write!(
            key,
            "|{}:{:?}:{:?}:{:?}:{:?}:{:?}:{}",
            v.name, v.dtype, v.dims, v.fill, v.compression, v.chunks, d
        );
        attrs(&mut key, &v.attrs);
    }
    key
}

/// An attribute value's type and stored size.
fn kind(value: &AttrValue) -> String {
    match value {
        AttrValue::Str(s) => format!("c{}", s.len()),
        AttrValue::F32(_) => "f".to_string(),
        AttrValue::F64(_) => "d".to_string(),
        AttrValue::I32(_) => "i".to_string(),
        AttrValue::F32s(v) => format!("f{}", v.len()),
        AttrValue::F64s(v) => format!("d{}", v.len()),
        AttrValue::I32s(v) => format!("i{}", v.len()),
    }
}

/// Whether two attribute values are the same bytes (NaN equal to the same NaN).
fn same(a: &AttrValue, b: &AttrValue) -> bool {
    match (a, b) {
        (AttrValue::Str(x), AttrValue::Str(y)) => x == y,
        (AttrValue::F32(x), AttrValue::F32(y)) => x.to_bits() == y.to_bits(),
        (AttrValue::F64(x), AttrValue::F64(y)) => x.to_bits() == y.to_bits(),
        (AttrValue::I32(x), AttrValue::I32(y)) => x == y,
        (AttrValue::F32s(x), AttrValue::F32s(y)) => same_f32(x, y),
        (AttrValue::F64s(x), AttrValue::F64s(y)) => same_f64(x, y),
        (AttrValue::I32s(x), AttrValue::I32s(y)) => x == y,
        _ => false,
    }
}

/// Whether two sets of values are the same bytes (-0.0 is not 0.0; NaN is NaN).
fn same_values(a: &Values, b: &Values) -> bool {
    match (a, b) {
        (Values::F32(x), Values::F32(y)) => same_f32(x, y),
        (Values::F64(x), Values::F64(y)) => same_f64(x, y),
        (Values::I32(x), Values::I32(y)) => x == y,
        (Values::I8(x), Values::I8(y)) => x == y,
        _ => false,
    }
}

fn same_f32(x: &[f32], y: &[f32]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
}

fn same_f64(x: &[f64], y: &[f64]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
}

/// Defines `def`'s header at `temp` through netCDF-C and closes it, then writes the
/// values of the variables that are not `direct` through HDF5 and keeps the file's
/// bytes as the template; returns it with the file open again for the chunk writer.
fn define_template(
    def: DatasetDef,
    direct: &[bool],
    temp: &Path,
    path: &Path,
) -> Result<(Template, ffi::H5File), NcError> {
    let mut file = ffi::create(temp).map_err(|source| NcError::Create {
        path: path.to_path_buf(),
        temp: temp.to_path_buf(),
        source,
    })?;
    write::define_dataset(&mut file, &def, path)?;
    file.close().map_err(|source| NcError::Close {
        path: path.to_path_buf(),
        source,
    })?;
    let global_attrs = def.global_attrs;
    let mut var_attrs = Vec::with_capacity(def.vars.len());
    let mut values = Vec::with_capacity(def.vars.len());
    let file = ffi::H5File::open_rw(temp, path)?;
    for (v, &d) in def.vars.into_iter().zip(direct) {
        var_attrs.push(v.attrs);
        if d {
            values.push(None);
            continue;
        }
        let x = in_memory(v.data).ok_or_else(|| not_in_memory(&v.name, path))?;
        file.dataset(&v.name)?.write_all(&x)?;
        values.push(Some(x));
    }
    // Closed, so that the bytes read are a whole file; then opened again.
    file.close()?;
    let bytes = std::fs::read(temp).map_err(|e| NcError::Create {
        path: path.to_path_buf(),
        temp: temp.to_path_buf(),
        source: netcdf::Error::Str(format!("reading the header back as a template: {e}")),
    })?;
    let template = Template {
        bytes,
        global_attrs,
        var_attrs,
        values,
    };
    Ok((template, ffi::H5File::open_rw(temp, path)?))
}

fn not_in_memory(name: &str, path: &Path) -> NcError {
    NcError::Invalid {
        path: path.to_path_buf(),
        reason: format!("values of `{name}` are not in memory"),
    }
}

/// Writes the template's bytes as a new file at `temp` (never over an existing one).
fn copy_template(bytes: &[u8], temp: &Path, path: &Path) -> Result<(), NcError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| NcError::Create {
            path: path.to_path_buf(),
            temp: temp.to_path_buf(),
            source: netcdf::Error::Str(format!("copying the header template: {e}")),
        })
}

/// Makes the copy of the template at `temp` `def`'s: overwrites the attribute values
/// and the values of the variables that are not `direct` that differ from the
/// template's; returns the file, open.
fn fill(
    def: DatasetDef,
    direct: &[bool],
    template: &Template,
    temp: &Path,
    path: &Path,
) -> Result<ffi::H5File, NcError> {
    let file = ffi::H5File::open_rw(temp, path)?;
    for ((name, value), (_, old)) in def.global_attrs.iter().zip(&template.global_attrs) {
        if !same(value, old) {
            file.set_global_attr(name, value)?;
        }
    }
    let vars = def.vars.into_iter().zip(direct).zip(&template.var_attrs);
    for (((v, &d), old_attrs), old_values) in vars.zip(&template.values) {
        let changed: Vec<&(String, AttrValue)> = v
            .attrs
            .iter()
            .zip(old_attrs)
            .filter(|((_, value), (_, old))| !same(value, old))
            .map(|(new, _)| new)
            .collect();
        let values = if d {
            None
        } else {
            let x = in_memory(v.data).ok_or_else(|| not_in_memory(&v.name, path))?;
            match old_values {
                Some(old) if same_values(&x, old) => None,
                _ => Some(x),
            }
        };
        if changed.is_empty() && values.is_none() {
            continue;
        }
        let set = file.dataset(&v.name)?;
        for (name, value) in changed {
            set.set_attr(name, value)?;
        }
        if let Some(x) = values {
            set.write_all(&x)?;
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::super::{write_atomic, write_atomic_with, Compression, VarDef, WriteMethod};
    use super::*;

    /// A small granule: an in-memory coordinate, a time, a compressed field with a
    /// valid range, and text attributes whose values change from granule to granule.
    fn granule(hours: i32, title: &str, seed: f32) -> DatasetDef {
        let values: Vec<f32> = (0..30).map(|k| seed + k as f32 * 0.25).collect();
        let mut field = VarDef::new("field", &["time", "y", "x"], VarData::F32(values));
        field.fill = Some(AttrValue::F32(-9999.0));
        field.compression = Some(Compression {
            deflate_level: 4,
            shuffle: true,
        });
        field.chunks = Some(vec![1, 3, 5]);
        field.valid_range = true;
        field.attrs = vec![
            ("units".into(), "m".into()),
            ("valid_min".into(), AttrValue::F32(0.0)),
            ("valid_max".into(), AttrValue::F32(0.0)),
            ("comment".into(), title.into()),
        ];
        let mut time = VarDef::new("time", &["time"], VarData::I32(vec![hours]));
        time.attrs = vec![("units".into(), "hours since 1992-01-01".into())];
        let x = VarDef::new("x", &["x"], VarData::I32((0..5).collect()));
        DatasetDef {
            dims: vec![("time".into(), 1), ("y".into(), 6), ("x".into(), 5)],
            vars: vec![x, time, field],
            global_attrs: vec![
                ("title".into(), title.into()),
                ("hours".into(), AttrValue::I32s(vec![hours, hours + 24])),
                ("Conventions".into(), "CF-1.8".into()),
            ],
        }
    }

    /// `ncdump` of `path`, its first line (the file's name) left out.
    fn dump(path: &Path) -> String {
        let out = std::process::Command::new("ncdump")
            .arg(path)
            .output()
            .expect("ncdump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default()
    }

    /// A granule made from another one's template reads back exactly as the same
    /// granule written by netCDF-C alone (header in creation order, types, values),
    /// and so does one whose text attribute changed length (defined in full).
    #[test]
    fn a_templated_granule_reads_as_a_fully_defined_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.nc");
        write_atomic(granule(12, "first granule", 1.0), &first).unwrap();
        for (name, hours, title, seed) in [
            ("templated", 36, "other granule", -2.5),
            ("longer", 60, "a longer title than before", 7.0),
        ] {
            let made = dir.path().join(format!("{name}.nc"));
            let full = dir.path().join(format!("{name}-netcdf.nc"));
            write_atomic(granule(hours, title, seed), &made).unwrap();
            write_atomic_with(granule(hours, title, seed), &full, WriteMethod::NetCdf).unwrap();
            let made_dump = dump(&made);
            assert_eq!(made_dump, dump(&full), "{name}");
            assert_ne!(made_dump, dump(&first), "{name}");
            assert!(
                made_dump.contains(&format!(":title = \"{title}\"")),
                "{made_dump}"
            );
            assert!(
                made_dump.contains(&format!("time = {hours} ;")),
                "{made_dump}"
            );
        }
    }

    #[test]
    fn keys_differ_by_text_length_not_by_value() {
        let direct = [false, false, true];
        let key = |h, t: &str| shape_key(&granule(h, t, 0.0), &direct);
        assert_eq!(key(12, "first granule"), key(36, "other granule"));
        assert_ne!(key(12, "first granule"), key(12, "first granule!"));
    }
}
