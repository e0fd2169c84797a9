//! The groupings a metadata set implies but its groupings files lack: the
//! time-invariant geometry datasets (`GRID_GEOMETRY`, both products) and the lat-lon
//! copies of native `TI` groupings, which PO.DAAC publishes. They are metadata (names,
//! fields, numbering), so they are derived here, where the groupings are loaded, and
//! the granule builders and the task planner only read them.

use serde_json::Value;

use super::{Grouping, Product, Record};
use crate::time::Frequency;

/// The grouping `filename` of the geometry datasets.
pub const GEOMETRY: &str = "GRID_GEOMETRY";

/// Is this the derived geometry grouping (made from the grid, no inputs)?
pub fn is_geometry(g: &Grouping) -> bool {
    g.filename == GEOMETRY
}

fn record_names(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The time-invariant groupings a metadata set implies but its groupings files lack:
/// `GRID_GEOMETRY` per product (the geometry records' variables), and each native
/// `TI` grouping on the lat-lon grid. Indices continue after each file's groupings.
pub fn derived_groupings(
    native: &[Grouping],
    latlon: &[Grouping],
    geometry_native: &[Record],
    geometry_latlon: &[Record],
) -> Vec<Grouping> {
    let mut out = Vec::new();
    let mut next = [native.len(), latlon.len()];
    let mut push = |mut g: Grouping, out: &mut Vec<Grouping>| {
        let slot = usize::from(g.product == Product::Latlon);
        g.index = next[slot];
        next[slot] += 1;
        out.push(g);
    };
    let geometry = |product: Product, records: &[Record]| Grouping {
        index: 0,
        product,
        name: "grid geometry parameters".into(),
        fields: record_names(records),
        filename: GEOMETRY.into(),
        dimension: "3D".into(),
        frequencies: vec![Frequency::Ti],
        comment: None,
        rename: None,
        field_components: None,
        field_orientations: None,
    };
    if !geometry_native.is_empty() {
        push(geometry(Product::Native, geometry_native), &mut out);
    }
    if !geometry_latlon.is_empty() {
        push(geometry(Product::Latlon, geometry_latlon), &mut out);
    }
    for g in native
        .iter()
        .filter(|g| g.frequencies.contains(&Frequency::Ti))
    {
        if latlon.iter().all(|l| l.filename != g.filename) {
            let mut copy = g.clone();
            copy.product = Product::Latlon;
            push(copy, &mut out);
        }
    }
    out
}
