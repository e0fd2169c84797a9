//! The metadata model: products, groupings, the PO.DAAC and diagnostics rows, and the
//! whole set with its look-ups (what the task and granule layers ask of it).

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::{MetadataError, Record, Release};
use crate::llc::PointType;
use crate::time::Frequency;

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
    pub(super) fn from_record(
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
    /// Records of the geometry datasets' variables (native, lat-lon).
    pub geometry_native: Vec<Record>,
    pub geometry_latlon: Vec<Record>,
    /// `ECCO Geometry and Mixing Dataset Info.txt`: the time-invariant datasets'
    /// descriptions, by file name (empty when the set lacks it).
    pub dataset_info: String,
    /// Time-invariant groupings the groupings files lack, numbered after them (see
    /// [`super::derived_groupings`]).
    pub derived_groupings: Vec<Grouping>,
}

impl MetadataSet {
    pub fn groupings(&self, product: Product) -> &[Grouping] {
        match product {
            Product::Native => &self.groupings_native,
            Product::Latlon => &self.groupings_latlon,
        }
    }

    /// The grouping a job's index names: the groupings file's, then the derived
    /// time-invariant ones numbered after them.
    pub fn grouping(&self, product: Product, index: usize) -> Option<&Grouping> {
        self.groupings(product).get(index).or_else(|| {
            self.derived_groupings
                .iter()
                .find(|g| g.product == product && g.index == index)
        })
    }

    /// Finds a grouping by its `filename` (e.g. `SEA_SURFACE_HEIGHT`), derived ones included.
    pub fn grouping_named(&self, product: Product, filename: &str) -> Option<&Grouping> {
        self.grouping_by_filename(product, filename).or_else(|| {
            self.derived_groupings
                .iter()
                .find(|g| g.product == product && g.filename == filename)
        })
    }

    /// Finds a grouping by its `filename` (e.g. `SEA_SURFACE_HEIGHT`).
    pub fn grouping_by_filename(&self, product: Product, filename: &str) -> Option<&Grouping> {
        self.groupings(product)
            .iter()
            .find(|g| g.filename == filename)
    }

    /// The first variable record with this name (EDP takes the first match).
    pub fn variable(&self, name: &str) -> Option<&Record> {
        record_named(&self.variables, name)
    }

    pub fn native_coord(&self, name: &str) -> Option<&Record> {
        record_named(&self.coords_native, name)
    }

    pub fn time_coord(&self, name: &str) -> Option<&Record> {
        record_named(&self.time_coords, name)
    }

    /// The PO.DAAC row for a granule (file name matched with the date wildcarded;
    /// snapshots included, unlike EDP's newest matcher).
    pub fn podaac_row(&self, granule_file: &str, date: &str) -> Option<&PodaacRow> {
        if date.is_empty() {
            // Time-invariant granules: one file per dataset, named exactly.
            return self
                .podaac
                .iter()
                .find(|r| r.filename.eq_ignore_ascii_case(granule_file));
        }
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

/// The record named `name` among `records` (a metadata file's list).
pub fn record_named<'a>(records: &'a [Record], name: &str) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
}
