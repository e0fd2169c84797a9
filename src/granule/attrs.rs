//! Attribute assembly from the ECCO metadata records, reproducing EDP's order.
//!
//! EDP's attribute order is an accident of its stack (xmitgcm seeds a few attributes,
//! ecco_v4_py then visits metadata keys in sorted order, updating existing keys in
//! place and appending new ones); reproducing it keeps `ncdump -h` of our granules
//! comparable line by line with EDP's.

use serde_json::Value;

use crate::metadata::{MetadataSet, Product, Record};
use crate::ncio::AttrValue;
use crate::tasks::{GranuleName, Task};

/// An ordered attribute list.
pub type Attrs = Vec<(String, AttrValue)>;

/// Sets `key`, keeping its position if present (Python dict semantics).
pub fn set(attrs: &mut Attrs, key: &str, value: AttrValue) {
    match attrs.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => attrs.push((key.to_string(), value)),
    }
}

pub fn get<'a>(attrs: &'a [(String, AttrValue)], key: &str) -> Option<&'a AttrValue> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The text of `key`, when it is a text attribute.
pub fn get_text(attrs: &[(String, AttrValue)], key: &str) -> Option<String> {
    match get(attrs, key)? {
        AttrValue::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn json_attr(v: &Value) -> Option<AttrValue> {
    match v {
        Value::String(s) => Some(AttrValue::Str(s.clone())),
        Value::Number(n) if n.is_i64() => n
            .as_i64()
            .and_then(|x| i32::try_from(x).ok())
            .map(AttrValue::I32),
        Value::Number(n) => n.as_f64().map(AttrValue::F64),
        Value::Array(items) => {
            let xs: Option<Vec<f64>> = items.iter().map(Value::as_f64).collect();
            xs.map(AttrValue::F64s)
        }
        _ => None,
    }
}

/// Keys of a variable record that are bookkeeping, not attributes (ecco_v4_py's list).
const VARIABLE_SKIP: &[&str] = &[
    "name",
    "grid_dimension",
    "GCMD_keywords",
    "variable_rename",
    "comments_1",
    "comments_2",
    "internal_note",
    "internal note",
    "grid_location",
    "land_mask_override",
];

/// Merges a metadata record into `attrs` in sorted key order, skipping `skip`.
pub fn merge_record(attrs: &mut Attrs, record: &Record, skip: &[&str]) {
    let mut keys: Vec<&String> = record.keys().collect();
    keys.sort();
    for k in keys {
        if skip.contains(&k.as_str()) {
            continue;
        }
        if let Some(v) = json_attr(&record[k]) {
            set(attrs, k, v);
        }
    }
}

/// Applies a data variable's record: sorted keys, then `comment` from
/// `comments_1`/`comments_2` as ecco_v4_py joins them.
pub fn merge_variable_record(attrs: &mut Attrs, record: &Record) {
    merge_record(attrs, record, VARIABLE_SKIP);
    let text = |k: &str| {
        record
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (c1, c2) = (text("comments_1"), text("comments_2"));
    let comment = match (c1.is_empty(), c2.is_empty()) {
        (false, false) if c1.ends_with('.') => format!("{c1} {c2}"),
        (false, false) => format!("{c1}. {c2}"),
        (false, true) => c1,
        (true, false) => c2,
        (true, true) => return,
    };
    set(attrs, "comment", AttrValue::Str(comment));
}

/// The GCMD keywords of one record (comma-separated in the JSON).
pub fn gcmd_keywords(record: &Record) -> Vec<String> {
    record
        .get("GCMD_keywords")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A metadata record's `value`, typed by its `type` (`f`, `i`, else a string).
pub(crate) fn template_value(r: &Record) -> Option<AttrValue> {
    let v = r.get("value")?;
    match r.get("type").and_then(Value::as_str).unwrap_or("s") {
        "f" => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(AttrValue::F64),
        "i" => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|x| i32::try_from(x).ok())
            .map(AttrValue::I32),
        _ => Some(AttrValue::Str(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
    }
}

/// What the global attributes of one granule depend on besides the metadata set.
pub struct GlobalInputs<'a> {
    pub task: &'a Task,
    pub product: Product,
    pub granule_file: &'a str,
    pub file_date: &'a str,
    pub keywords: Vec<String>,
    /// `YYYY-MM-DDThh:mm:ssZ`, UTC.
    pub now: &'a str,
    pub uuid: String,
}

/// Global attributes in EDP's order of application (later wins), sorted
/// case-insensitively; the caller appends `coordinates` last.
pub fn global_attrs(m: &MetadataSet, g: &GlobalInputs<'_>) -> Attrs {
    let rel = &m.release;
    let dm = &g.task.dynamic_metadata;
    let mut a: Attrs = Vec::new();
    // 1. DOI defaults (replaced below when the PO.DAAC table knows the dataset).
    set(&mut a, "metadata_link", rel.doi_prefix.as_str().into());
    set(
        &mut a,
        "identifier_product_doi",
        rel.doi_prefix.as_str().into(),
    );
    set(
        &mut a,
        "identifier_product_doi_authority",
        "https://doi.org".into(),
    );
    // 2. Templates: all datasets, then the product's, filtered by dimension.
    apply_templates(&mut a, m, g.product, &dm.dimension);
    let template_str = |a: &Attrs, key: &str| match get(a, key) {
        Some(AttrValue::Str(s)) => s.clone(),
        _ => String::new(),
    };
    let template_keywords = template_str(&a, "keywords");
    let template_comment = template_str(&a, "comment");
    // 3. Time coverage. EDP sets it for means only, leaving snapshots with the
    // template's TBD_DATASET; a snapshot covers its instant, so we write that.
    for (k, v) in [
        ("time_coverage_start", &dm.time_coverage_start),
        ("time_coverage_end", &dm.time_coverage_end),
    ] {
        set(&mut a, k, v.as_str().into());
    }
    // 4. Creation dates.
    for k in [
        "date_created",
        "date_modified",
        "date_metadata_modified",
        "date_issued",
    ] {
        set(&mut a, k, g.now.into());
    }
    // 5. Release constants.
    release_constants(&mut a, rel);
    // 6. Keywords: this granule's variables plus the template's, sorted, unique.
    let mut kw: Vec<String> = g
        .keywords
        .iter()
        .cloned()
        .chain(template_keywords.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    kw.sort();
    kw.dedup();
    set(&mut a, "keywords", kw.join(", ").into());
    // 7. A random (v4) UUID: EDP's uuid1 embeds the host's MAC address.
    set(&mut a, "uuid", g.uuid.as_str().into());
    // 8. Comment: template + grouping comment.
    let comment = match &dm.comment {
        Some(c) if !c.is_empty() => format!("{template_comment} {c}"),
        _ => template_comment,
    };
    set(&mut a, "comment", comment.into());
    // 9. Per-granule values.
    for (k, v) in [
        ("time_coverage_duration", &dm.time_coverage_duration),
        ("time_coverage_resolution", &dm.time_coverage_resolution),
    ] {
        set(&mut a, k, v.as_str().into());
    }
    set(&mut a, "product_name", g.granule_file.into());
    set(&mut a, "summary", dm.summary.trim_end().into());
    // 10. PO.DAAC identity.
    podaac_identity(&mut a, m, g);
    set(
        &mut a,
        "coordinates_note",
        "The 'coordinates' attribute lists a subset of auxiliary coordinates.".into(),
    );
    a.sort_by_key(|(k, _)| k.to_lowercase());
    a
}

/// Merges a coordinate's record into `a`; a bounds variable takes neither its `units`
/// nor its `positive` (they are its parent coordinate's).
pub fn merge_coord_record(a: &mut Attrs, record: &Record, bounds: bool) {
    let skip: &[&str] = if bounds {
        &["name", "grid_dimension", "units", "positive"]
    } else {
        &["name", "grid_dimension"]
    };
    merge_record(a, record, skip);
}

/// The global attributes of the granule `name` (see [`global_attrs`]), with the
/// `coordinates` it lists last.
pub fn granule_globals(
    m: &MetadataSet,
    task: &Task,
    name: &GranuleName,
    keywords: Vec<String>,
    now: &str,
    global_coords: &[&str],
) -> Attrs {
    let granule_file = name.file_name();
    let mut globals = global_attrs(
        m,
        &GlobalInputs {
            task,
            product: name.product,
            granule_file: &granule_file,
            file_date: &name.date,
            keywords,
            now,
            uuid: uuid::Uuid::new_v4().to_string(),
        },
    );
    globals.push(("coordinates".into(), global_coords.join(" ").into()));
    globals
}

/// The templates' attributes: all datasets', then the product's, each only where its
/// `grid_dimension` (if any) lists the granule's dimension.
fn apply_templates(a: &mut Attrs, m: &MetadataSet, product: Product, dimension: &str) {
    let product_template = match product {
        Product::Native => &m.global_native,
        Product::Latlon => &m.global_latlon,
    };
    for r in m.global_all.iter().chain(product_template.iter()) {
        if let Some(dims) = r.get("grid_dimension").and_then(Value::as_str) {
            if !dims.split_whitespace().any(|d| d == dimension) {
                continue;
            }
        }
        if let (Some(name), Some(v)) = (r.get("name").and_then(Value::as_str), template_value(r)) {
            set(a, name, v);
        }
    }
}

/// The attributes every granule of the release shares.
fn release_constants(a: &mut Attrs, rel: &crate::metadata::Release) {
    set(a, "history", rel.history.as_str().into());
    set(
        a,
        "geospatial_vertical_min",
        AttrValue::F64(rel.geospatial_vertical_min),
    );
    set(
        a,
        "product_time_coverage_start",
        rel.clock.start.iso().into(),
    );
    set(a, "product_time_coverage_end", rel.clock.end.iso().into());
    set(a, "product_version", rel.product_version.as_str().into());
    set(a, "references", rel.references.as_str().into());
    set(a, "source", rel.source.as_str().into());
    set(a, "project_summary", "".into());
}

/// The PO.DAAC identity, in the published form: DOI 10.5067/<code> resolved by
/// https://doi.org, and a CMR metadata link (EDP writes https://doi.org/PODAAC-...).
fn podaac_identity(a: &mut Attrs, m: &MetadataSet, g: &GlobalInputs<'_>) {
    let rel = &m.release;
    if let Some(row) = m.podaac_row(g.granule_file, g.file_date) {
        // V4r4's table holds PODAAC-<code>, V4r5's the DOI itself (10.5067/<code>).
        let doi = if row.persistent_id.starts_with("10.") {
            row.persistent_id.clone()
        } else {
            let code = row
                .persistent_id
                .strip_prefix("PODAAC-")
                .unwrap_or(&row.persistent_id);
            format!("{}/{code}", rel.doi_prefix)
        };
        set(a, "id", row.short_name.as_str().into());
        set(a, "title", row.long_name.as_str().into());
        set(a, "identifier_product_doi", doi.into());
        set(
            a,
            "metadata_link",
            format!("{}{}", rel.metadata_link_root, row.short_name).into(),
        );
    } else {
        log::warn!(
            "{}: no PO.DAAC dataset row matches; id/title/DOI keep template values",
            g.granule_file
        );
    }
}
