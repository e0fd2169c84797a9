//! The ECCO metadata set: dataset groupings, variable / coordinate / global attribute
//! records, the PO.DAAC dataset table, the MITgcm diagnostics table, and the release
//! constants (model clock, labels, DOI prefix, description tails).
//!
//! The V4r4 set is vendored under `metadata/V4r4/` and embedded in the binary as the
//! default; `--metadata DIR` loads another release's set (V4r5 names its files without
//! the `ECCOv4r4_` prefix, so files are found by suffix). These are data: nothing here
//! knows how a granule is laid out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::llc::PointType;
use crate::time::{Frequency, Instant, ModelClock};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot read metadata file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata file {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("metadata file {path}: {what}")]
    Format { path: PathBuf, what: String },
    #[error("metadata directory {dir} has no file matching '*{suffix}'")]
    Missing { dir: PathBuf, suffix: String },
}

/// One record of an attribute JSON file: `name` plus attribute keys in file order.
pub type Record = Map<String, Value>;

/// The product a grouping belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    Native,
    Latlon,
}

impl Product {
    pub fn parse(s: &str) -> Option<Product> {
        match s {
            "native" => Some(Product::Native),
            "latlon" => Some(Product::Latlon),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Product::Native => "native",
            Product::Latlon => "latlon",
        }
    }
}

/// A dataset grouping: which fields go into one granule.
#[derive(Debug, Clone)]
pub struct Grouping {
    pub index: usize,
    pub product: Product,
    pub name: String,
    /// Output variable names, in order.
    pub fields: Vec<String>,
    pub filename: String,
    /// `2D` or `3D`.
    pub dimension: String,
    pub frequencies: Vec<Frequency>,
    pub comment: Option<String>,
    /// Input name → output name (`variable_rename: "OLD:NEW"`).
    pub rename: Option<(String, String)>,
    pub field_components: Option<Value>,
    pub field_orientations: Option<Value>,
}

impl Grouping {
    fn from_record(
        index: usize,
        product: Product,
        r: &Record,
        path: &Path,
    ) -> Result<Self, MetadataError> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let need = |k: &str| {
            s(k).ok_or_else(|| MetadataError::Format {
                path: path.to_path_buf(),
                what: format!("grouping {index} has no string '{k}'"),
            })
        };
        let fields = need("fields")?
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect();
        let frequencies = s("frequency")
            .unwrap_or_default()
            .split(',')
            .filter_map(|f| Frequency::parse(f.trim()))
            .collect();
        let rename = s("variable_rename").and_then(|v| {
            v.split_once(':')
                .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        });
        Ok(Grouping {
            index,
            product,
            name: need("name")?,
            fields,
            filename: need("filename")?,
            dimension: need("dimension")?,
            frequencies,
            comment: s("comment").filter(|c| !c.is_empty()),
            rename,
            field_components: r.get("field_components").cloned(),
            field_orientations: r.get("field_orientations").cloned(),
        })
    }

    pub fn is_3d(&self) -> bool {
        self.dimension.eq_ignore_ascii_case("3D")
    }

    /// Output variable name for an input field name (applies `variable_rename`).
    pub fn output_name<'a>(&'a self, field: &'a str) -> &'a str {
        match &self.rename {
            Some((from, to)) if from == field => to,
            _ => field,
        }
    }
}

/// One row of the PO.DAAC dataset table.
#[derive(Debug, Clone)]
pub struct PodaacRow {
    pub short_name: String,
    pub long_name: String,
    pub filename: String,
    pub persistent_id: String,
}

/// What MITgcm's `available_diagnostics.log` says of a diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub point: PointType,
    /// Vertical dimension name (`k`, `k_u`, `k_l`) for multi-level diagnostics.
    pub vertical: Option<&'static str>,
    pub long_name: String,
    pub units: String,
    pub mate: Option<String>,
}

/// Release constants (EDP's `config_<release>.yaml` values that granules use).
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub product_version: String,
    pub clock: ModelClock,
    pub native_label: String,
    pub latlon_label: String,
    pub history: String,
    pub references: String,
    pub source: String,
    pub doi_prefix: String,
    pub metadata_link_root: String,
    pub geospatial_vertical_min: f64,
    pub tail_native: String,
    pub tail_latlon: String,
    pub podaac_file: String,
}

impl Release {
    /// V4r4 values from EDP's `configs/config_V4r4.yaml`.
    pub fn v4r4() -> Release {
        Release {
            version: "V4r4".into(),
            product_version: "Version 4, Release 4".into(),
            clock: ModelClock::v4r4(),
            native_label: "llc0090".into(),
            latlon_label: "0p50deg".into(),
            history: "Inaugural release of an ECCO Central Estimate solution to PO.DAAC".into(),
            references: "ECCO Consortium, Fukumori, I., Wang, O., Fenty, I., Forget, G., Heimbach, P., & Ponte, R. M. 2020. Synopsis of the ECCO Central Production Global Ocean and Sea-Ice State Estimate (Version 4 Release 4). doi:10.5281/zenodo.3765928".into(),
            source: "The ECCO V4r4 state estimate was produced by fitting a free-running solution of the MITgcm (checkpoint 66g) to satellite and in situ observational data in a least squares sense using the adjoint method.".into(),
            doi_prefix: "10.5067".into(),
            metadata_link_root: "https://cmr.earthdata.nasa.gov/search/collections.umm_json?ShortName=".into(),
            geospatial_vertical_min: -6134.5,
            tail_native: " on the native Lat-Lon-Cap 90 (LLC90) model grid from the ECCO Version 4 revision 4 (V4r4) ocean and sea-ice state estimate.".into(),
            tail_latlon: " interpolated to a regular 0.5-degree grid from the ECCO Version 4 revision 4 (V4r4) ocean and sea-ice state estimate.".into(),
            podaac_file: "PODAAC_datasets-revised_20210226.5.csv".into(),
        }
    }

    /// Applies overrides from an `edp_release.json` in a metadata directory
    /// (keys named as in EDP's YAML config: `ecco_version`, `model_start_time`, …).
    fn apply_overrides(
        &mut self,
        v: &Map<String, Value>,
        path: &Path,
    ) -> Result<(), MetadataError> {
        let bad = |what: String| MetadataError::Format {
            path: path.to_path_buf(),
            what,
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(s) = text("ecco_version") {
            self.version = s;
        }
        if let Some(s) = text("product_version") {
            self.product_version = s;
        }
        for (key, slot) in [
            ("history", &mut self.history),
            ("references", &mut self.references),
            ("source", &mut self.source),
            ("doi_prefix", &mut self.doi_prefix),
            ("metadata_link_root", &mut self.metadata_link_root),
            ("dataset_description_tail_native", &mut self.tail_native),
            ("dataset_description_tail_latlon", &mut self.tail_latlon),
            ("podaac_metadata_filename", &mut self.podaac_file),
        ] {
            if let Some(s) = text(key) {
                *slot = s;
            }
        }
        if let Some(labels) = v.get("ecco_production_filestr_grid_label") {
            if let Some(s) = labels.get("native").and_then(Value::as_str) {
                self.native_label = s.into();
            }
            if let Some(s) = labels.get("latlon").and_then(Value::as_str) {
                self.latlon_label = s.into();
            }
        }
        if let Some(x) = v.get("geospatial_vertical_min").and_then(Value::as_f64) {
            self.geospatial_vertical_min = x;
        }
        for (key, slot) in [
            ("model_start_time", &mut self.clock.start),
            ("model_end_time", &mut self.clock.end),
        ] {
            if let Some(s) = text(key) {
                *slot = Instant::parse(&s).map_err(|e| bad(format!("{key}: {e}")))?;
            }
        }
        if v.contains_key("model_timestep") || v.contains_key("model_timestep_units") {
            let n = v.get("model_timestep").and_then(Value::as_i64).unwrap_or(1);
            let unit = text("model_timestep_units").unwrap_or_else(|| "h".into());
            self.clock.step_seconds =
                ModelClock::step_seconds_from(n, &unit).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }
}

/// The whole metadata set a run needs.
#[derive(Debug, Clone)]
pub struct MetadataSet {
    /// Where it came from (`embedded V4r4` or a directory), for messages.
    pub origin: String,
    pub groupings_native: Vec<Grouping>,
    pub groupings_latlon: Vec<Grouping>,
    /// `variable_metadata` followed by the native geometry records.
    pub variables: Vec<Record>,
    pub variables_latlon: Vec<Record>,
    pub coords_native: Vec<Record>,
    pub coords_latlon: Vec<Record>,
    pub time_coords: Vec<Record>,
    pub global_all: Vec<Record>,
    pub global_native: Vec<Record>,
    pub global_latlon: Vec<Record>,
    pub podaac: Vec<PodaacRow>,
    pub diagnostics: HashMap<String, Diagnostic>,
    pub release: Release,
}

/// Files of the embedded V4r4 set, by the suffix they are looked up with.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "groupings_for_native_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_groupings_for_native_datasets.json"),
    ),
    (
        "groupings_for_latlon_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_groupings_for_latlon_datasets.json"),
    ),
    (
        "variable_metadata.json",
        include_str!("../metadata/V4r4/ECCOv4r4_variable_metadata.json"),
    ),
    (
        "variable_metadata_for_latlon_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_variable_metadata_for_latlon_datasets.json"),
    ),
    (
        "coordinate_metadata_for_native_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_coordinate_metadata_for_native_datasets.json"),
    ),
    (
        "coordinate_metadata_for_latlon_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_coordinate_metadata_for_latlon_datasets.json"),
    ),
    (
        "geometry_metadata_for_native_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_geometry_metadata_for_native_datasets.json"),
    ),
    (
        "global_metadata_for_all_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_global_metadata_for_all_datasets.json"),
    ),
    (
        "global_metadata_for_native_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_global_metadata_for_native_datasets.json"),
    ),
    (
        "global_metadata_for_latlon_datasets.json",
        include_str!("../metadata/V4r4/ECCOv4r4_global_metadata_for_latlon_datasets.json"),
    ),
    (
        "time_coordinate_metadata.json",
        include_str!("../metadata/V4r4/time_coordinate_metadata.json"),
    ),
    (
        "PODAAC_datasets-revised_20210226.5.csv",
        include_str!("../metadata/V4r4/PODAAC_datasets-revised_20210226.5.csv"),
    ),
    (
        "available_diagnostics.log",
        include_str!("../metadata/V4r4/available_diagnostics.log"),
    ),
];

/// Where the text of each metadata file comes from.
enum Source<'a> {
    Embedded,
    Dir(&'a Path, Vec<PathBuf>),
}

impl Source<'_> {
    /// Finds the file whose name ends with `suffix` (preferring the shortest name, so
    /// `variable_metadata.json` does not pick `..._for_latlon_datasets.json`).
    fn read(
        &self,
        suffix: &str,
        required: bool,
    ) -> Result<Option<(PathBuf, String)>, MetadataError> {
        match self {
            Source::Embedded => Ok(EMBEDDED
                .iter()
                .find(|(s, _)| *s == suffix)
                .map(|(s, text)| {
                    (
                        PathBuf::from(format!("<embedded V4r4>/{s}")),
                        text.to_string(),
                    )
                })),
            Source::Dir(dir, files) => {
                let hit = files
                    .iter()
                    .filter(|p| {
                        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.ends_with(suffix)
                                && (n.len() == suffix.len()
                                    || !n[..n.len() - suffix.len()]
                                        .ends_with("for_latlon_datasets_"))
                        })
                    })
                    .min_by_key(|p| p.as_os_str().len());
                match hit {
                    Some(p) => {
                        let text =
                            std::fs::read_to_string(p).map_err(|source| MetadataError::Io {
                                path: p.clone(),
                                source,
                            })?;
                        Ok(Some((p.clone(), text)))
                    }
                    None if required => Err(MetadataError::Missing {
                        dir: dir.to_path_buf(),
                        suffix: suffix.to_string(),
                    }),
                    None => Ok(None),
                }
            }
        }
    }
}

fn records(path: &Path, text: &str) -> Result<Vec<Record>, MetadataError> {
    let v: Value = serde_json::from_str(text).map_err(|source| MetadataError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let Value::Array(items) = v else {
        return Err(MetadataError::Format {
            path: path.to_path_buf(),
            what: "expected a JSON list of records".into(),
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(m) if m.get("name").is_some_and(Value::is_string) => Ok(m),
            _ => Err(MetadataError::Format {
                path: path.to_path_buf(),
                what: format!("record {i} is not an object with a string 'name'"),
            }),
        })
        .collect()
}

impl MetadataSet {
    /// The V4r4 set compiled into the binary.
    pub fn embedded() -> Result<MetadataSet, MetadataError> {
        Self::load_from(Source::Embedded, "embedded V4r4".into(), Release::v4r4())
    }

    /// A metadata directory (V4r4 or V4r5 naming). Files the directory lacks that only
    /// describe the model (the diagnostics table) fall back to the embedded copy.
    pub fn from_dir(dir: &Path) -> Result<MetadataSet, MetadataError> {
        let rd = std::fs::read_dir(dir).map_err(|source| MetadataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for e in rd {
            let e = e.map_err(|source| MetadataError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            files.push(e.path());
        }
        let mut release = Release::v4r4();
        let cfg = dir.join("edp_release.json");
        if cfg.is_file() {
            let text = std::fs::read_to_string(&cfg).map_err(|source| MetadataError::Io {
                path: cfg.clone(),
                source,
            })?;
            let v: Value = serde_json::from_str(&text).map_err(|source| MetadataError::Json {
                path: cfg.clone(),
                source,
            })?;
            let Value::Object(m) = v else {
                return Err(MetadataError::Format {
                    path: cfg,
                    what: "expected a JSON object".into(),
                });
            };
            release.apply_overrides(&m, &cfg)?;
        } else if let Some(v) = guess_version(dir) {
            release.version = v;
        }
        Self::load_from(Source::Dir(dir, files), dir.display().to_string(), release)
    }

    fn load_from(
        src: Source<'_>,
        origin: String,
        release: Release,
    ) -> Result<MetadataSet, MetadataError> {
        let req = |suffix: &str| -> Result<(PathBuf, String), MetadataError> {
            src.read(suffix, true)?
                .ok_or_else(|| MetadataError::Missing {
                    dir: PathBuf::from(origin.clone()),
                    suffix: suffix.into(),
                })
        };
        let recs = |suffix: &str| -> Result<Vec<Record>, MetadataError> {
            let (p, t) = req(suffix)?;
            records(&p, &t)
        };
        let opt_recs = |suffix: &str| -> Result<Vec<Record>, MetadataError> {
            match src.read(suffix, false)? {
                Some((p, t)) => records(&p, &t),
                None => Ok(Vec::new()),
            }
        };
        let groupings = |suffix: &str, product: Product| -> Result<Vec<Grouping>, MetadataError> {
            let (p, t) = req(suffix)?;
            records(&p, &t)?
                .iter()
                .enumerate()
                .map(|(i, r)| Grouping::from_record(i, product, r, &p))
                .collect()
        };
        let mut variables = recs("variable_metadata.json")?;
        variables.extend(opt_recs("geometry_metadata_for_native_datasets.json")?);
        let podaac = match src.read(&release.podaac_file, false)? {
            Some((p, t)) => parse_podaac(&p, &t)?,
            None => match src.read("dataset_table.csv", false)? {
                Some((p, t)) => parse_podaac(&p, &t)?,
                None => Vec::new(),
            },
        };
        let diagnostics = match src.read("available_diagnostics.log", false)? {
            Some((_, t)) => parse_diagnostics(&t),
            None => parse_diagnostics(
                EMBEDDED
                    .iter()
                    .find(|(s, _)| *s == "available_diagnostics.log")
                    .map(|(_, t)| *t)
                    .unwrap_or(""),
            ),
        };
        Ok(MetadataSet {
            origin: origin.clone(),
            groupings_native: groupings("groupings_for_native_datasets.json", Product::Native)?,
            groupings_latlon: groupings("groupings_for_latlon_datasets.json", Product::Latlon)?,
            variables,
            variables_latlon: opt_recs("variable_metadata_for_latlon_datasets.json")?,
            coords_native: recs("coordinate_metadata_for_native_datasets.json")?,
            coords_latlon: opt_recs("coordinate_metadata_for_latlon_datasets.json")?,
            time_coords: recs("time_coordinate_metadata.json")?,
            global_all: recs("global_metadata_for_all_datasets.json")?,
            global_native: recs("global_metadata_for_native_datasets.json")?,
            global_latlon: opt_recs("global_metadata_for_latlon_datasets.json")?,
            podaac,
            diagnostics,
            release,
        })
    }

    pub fn groupings(&self, product: Product) -> &[Grouping] {
        match product {
            Product::Native => &self.groupings_native,
            Product::Latlon => &self.groupings_latlon,
        }
    }

    /// Finds a grouping by its `filename` (e.g. `SEA_SURFACE_HEIGHT`).
    pub fn grouping_by_filename(&self, product: Product, filename: &str) -> Option<&Grouping> {
        self.groupings(product)
            .iter()
            .find(|g| g.filename == filename)
    }

    /// The first variable record with this name (EDP takes the first match).
    pub fn variable(&self, name: &str) -> Option<&Record> {
        find(&self.variables, name)
    }

    pub fn native_coord(&self, name: &str) -> Option<&Record> {
        find(&self.coords_native, name)
    }

    pub fn time_coord(&self, name: &str) -> Option<&Record> {
        find(&self.time_coords, name)
    }

    /// The PO.DAAC row for a granule (file name matched with the date wildcarded;
    /// snapshots included, unlike EDP's newest matcher).
    pub fn podaac_row(&self, granule_file: &str, date: &str) -> Option<&PodaacRow> {
        let (head, tail) = granule_file.split_once(date)?;
        let mut hits = self.podaac.iter().filter(|r| {
            r.filename.len() > head.len() + tail.len()
                && r.filename.starts_with(head)
                && r.filename.ends_with(tail)
                && r.filename[head.len()..r.filename.len() - tail.len()]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == 'T')
        });
        let first = hits.next()?;
        // Several rows for one file pattern would make the DOI ambiguous: take none.
        match hits.next() {
            Some(_) => None,
            None => Some(first),
        }
    }
}

fn find<'a>(records: &'a [Record], name: &str) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
}

fn guess_version(dir: &Path) -> Option<String> {
    dir.components().rev().find_map(|c| {
        let s = c.as_os_str().to_str()?;
        (s.len() == 4 && s.starts_with("V4r")).then(|| s.to_string())
    })
}

/// Minimal RFC 4180 reader (quoted fields with commas, doubled quotes, newlines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn parse_podaac(path: &Path, text: &str) -> Result<Vec<PodaacRow>, MetadataError> {
    let rows = parse_csv(text);
    let Some(header) = rows.first() else {
        return Ok(Vec::new());
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| MetadataError::Format {
                path: path.to_path_buf(),
                what: format!("PO.DAAC table has no column '{name}'"),
            })
    };
    let (sn, ln, f, pid) = (
        col("DATASET.SHORT_NAME")?,
        col("DATASET.LONG_NAME")?,
        col("DATASET.FILENAME")?,
        col("DATASET.PERSISTENT_ID")?,
    );
    Ok(rows[1..]
        .iter()
        .filter(|r| r.len() > sn.max(ln).max(f).max(pid))
        .map(|r| PodaacRow {
            short_name: r[sn].trim().to_string(),
            long_name: r[ln].trim().to_string(),
            filename: r[f].trim().to_string(),
            persistent_id: r[pid].trim().to_string(),
        })
        .collect())
}

/// Parses MITgcm's `available_diagnostics.log` the way xmitgcm does: the second
/// character of the code gives the horizontal point, the ninth and tenth the vertical.
pub fn parse_diagnostics(text: &str) -> HashMap<String, Diagnostic> {
    let mut by_id = HashMap::new();
    let mut out = HashMap::new();
    let mut mates = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').collect();
        if cols.len() != 7 || cols[0].trim() == "Num" {
            continue;
        }
        let (Ok(id), Ok(levs)) = (cols[0].trim().parse::<u32>(), cols[2].trim().parse::<u32>())
        else {
            continue;
        };
        let name = cols[1].trim().to_string();
        let code: Vec<char> = cols[4].chars().collect();
        if code.len() < 10 {
            continue;
        }
        let point = match code[1] {
            'U' => PointType::U,
            'V' => PointType::V,
            'Z' => PointType::G,
            _ => PointType::C,
        };
        let vertical = if code[9] == '1' && levs == 1 {
            None
        } else {
            match code[8] {
                'U' => Some("k_u"),
                'L' => Some("k_l"),
                _ => Some("k"),
            }
        };
        by_id.insert(id, name.clone());
        if let Ok(m) = cols[3].trim().parse::<u32>() {
            mates.push((name.clone(), m));
        }
        out.insert(
            name,
            Diagnostic {
                point,
                vertical,
                long_name: cols[6].trim().to_string(),
                units: cols[5].trim().to_string(),
                mate: None,
            },
        );
    }
    for (name, id) in mates {
        if let (Some(mate), Some(d)) = (by_id.get(&id).cloned(), out.get_mut(&name)) {
            d.mate = Some(mate);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_set_loads() {
        let m = MetadataSet::embedded().unwrap();
        assert_eq!(m.groupings_native.len(), 21);
        let ssh = &m.groupings_native[0];
        assert_eq!(ssh.filename, "SEA_SURFACE_HEIGHT");
        assert_eq!(ssh.fields, ["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
        assert_eq!(ssh.frequencies.len(), 3);
        let vel = m
            .grouping_by_filename(Product::Native, "OCEAN_VELOCITY")
            .unwrap();
        assert_eq!(vel.output_name("WVELMASS"), "WVEL");
        assert!(m.variable("THETA").is_some());
        assert!(
            m.variable("hFacC").is_some(),
            "geometry records are included"
        );
        assert!(!m.podaac.is_empty());
    }

    #[test]
    fn diagnostics_point_types() {
        let m = MetadataSet::embedded().unwrap();
        let d = &m.diagnostics;
        assert_eq!(d["SSH"].point, PointType::C);
        assert_eq!(d["SSH"].vertical, None);
        assert_eq!(d["UVEL"].point, PointType::U);
        assert_eq!(d["UVEL"].vertical, Some("k"));
        assert_eq!(d["UVEL"].mate.as_deref(), Some("VVEL"));
        assert_eq!(d["oceTAUY"].point, PointType::V);
        assert_eq!(d["WVEL"].vertical, Some("k_l"));
        assert_eq!(d["EXFtaux"].point, PointType::C);
    }

    #[test]
    fn podaac_lookup_wildcards_the_date() {
        let m = MetadataSet::embedded().unwrap();
        let row = m
            .podaac_row(
                "SEA_SURFACE_HEIGHT_mon_mean_1995-07_ECCO_V4r4_native_llc0090.nc",
                "1995-07",
            )
            .unwrap();
        assert_eq!(row.short_name, "ECCO_L4_SSH_LLC0090GRID_MONTHLY_V4R4");
        assert_eq!(row.persistent_id, "PODAAC-ECL5M-SSH44");
    }

    #[test]
    fn csv_quotes() {
        let rows = parse_csv("a,b\n\"x, y\",\"he said \"\"hi\"\"\nline\"\n");
        assert_eq!(rows[1], ["x, y", "he said \"hi\"\nline"]);
    }

    #[test]
    fn v4r5_directory_loads_once_its_json_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ecco-metadata/V4r5");
        if !dir.is_dir() {
            eprintln!("skipping: {} not present", dir.display());
            return;
        }
        // The upstream V4r5 global_metadata_for_all_datasets.json lacks commas
        // (lines 148 and 153): the error must name the file and the line.
        let err = MetadataSet::from_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("global_metadata_for_all_datasets.json"),
            "{err}"
        );
        assert!(err.contains("line 149"), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        let v4r5 = tmp.path().join("V4r5");
        std::fs::create_dir(&v4r5).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let mut text = std::fs::read_to_string(&p).unwrap_or_default();
            if p.ends_with("global_metadata_for_all_datasets.json") {
                text = text.replace("   }\n   {", "   },\n   {");
            }
            std::fs::write(v4r5.join(p.file_name().unwrap()), text).unwrap();
        }
        let m = MetadataSet::from_dir(&v4r5).unwrap();
        assert_eq!(m.release.version, "V4r5");
        assert!(m.groupings_native.len() > 10);
        assert!(m.native_coord("XC").is_some());
        assert!(m.diagnostics.contains_key("THETA"));
    }
}
