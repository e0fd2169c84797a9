//! Attributes beyond EDP's that CF-1.8 and ACDD-1.3 ask for and the data supports,
//! added to every granule after it is assembled. EDP's attribute set is kept (nothing
//! is removed or renamed); each addition is a deliberate difference listed in the
//! README, and `tests/compliance.rs` holds the IOOS compliance-checker scores they give
//! as floors.
//!
//! - `time:comment` says what the time value is (EDP leaves it empty).
//! - `geospatial_lat/lon_min/max` are the extents of the granule's cells, from their
//!   bounds (`latitude_bnds`/`longitude_bnds`, or the LLC cell corners `XG`/`YG`):
//!   what a bounding-box search matches.
//!   For the global grids this is EDP's ±90/±180 (EDP writes them from a template
//!   whatever the grid covers); `geospatial_bounds` is the WKT polygon of the extents.
//! - 3D: `geospatial_vertical_min/max` are the extents of `Z_bnds` (the bottom and top
//!   faces, EDP's −6134.5 and 0 for V4r4), with `geospatial_bounds_vertical_crs`; 2D:
//!   `geospatial_vertical_max = 0` with `_positive`/`_units` beside EDP's
//!   `geospatial_vertical_min`.
//! - The native level indices `k`, `k_u`, `k_l`, `k_p1` (axis Z) get `units = "1"` and
//!   `positive = "down"` (the index grows downward), as CF asks of vertical axes.

use super::attrs::Attrs;
use crate::ncio::{AttrValue, DType, DatasetDef, VarData};

/// Global attributes EDP does not write (on some granules) that [`enrich`] adds.
pub const ADDED_GLOBALS: &[&str] = &[
    "geospatial_bounds",
    "geospatial_bounds_vertical_crs",
    "geospatial_vertical_max",
    "geospatial_vertical_positive",
    "geospatial_vertical_units",
];

/// Global attributes whose EDP values [`enrich`] replaces with the data's extents
/// (equal to EDP's on its global V4r4 grids: the header tests compare them).
pub const CHANGED_GLOBALS: &[&str] = crate::metadata::GEOSPATIAL_EXTENTS;

/// Variable attributes (variable, attribute) [`enrich`] adds.
pub const ADDED_VAR_ATTRS: &[(&str, &str)] = &[
    ("k", "units"),
    ("k", "positive"),
    ("k_u", "units"),
    ("k_u", "positive"),
    ("k_l", "units"),
    ("k_l", "positive"),
    ("k_p1", "units"),
    ("k_p1", "positive"),
];

/// Variable attributes whose (empty) EDP value [`enrich`] fills in.
pub const CHANGED_VAR_ATTRS: &[(&str, &str)] = &[("time", "comment")];

/// Height above sea level (EPSG:5829), the vertical CRS of values positive up in metres.
const VERTICAL_CRS: &str = "EPSG:5829";

/// Sets a global attribute, keeping EDP's case-insensitive order (and `coordinates`
/// last) for a new one.
fn set_global(globals: &mut Attrs, key: &str, value: AttrValue) {
    if let Some(slot) = globals.iter_mut().find(|(k, _)| k == key) {
        slot.1 = value;
        return;
    }
    let sorted = match globals.last() {
        Some((k, _)) if k == "coordinates" => globals.len() - 1,
        _ => globals.len(),
    };
    let at = globals[..sorted]
        .iter()
        .position(|(k, _)| k.to_lowercase() > key.to_lowercase())
        .unwrap_or(sorted);
    globals.insert(at, (key.to_string(), value));
}

fn set_var_attr(attrs: &mut Attrs, key: &str, value: AttrValue) {
    match attrs.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => attrs.push((key.to_string(), value)),
    }
}

/// Min and max over the finite float32 data of the named variables (in memory, or
/// shared grid coordinates produced tile by tile).
fn extent(def: &DatasetDef, names: &[&str]) -> Option<(f64, f64)> {
    let mut out: Option<(f64, f64)> = None;
    let mut widen = |lo: f64, hi: f64| {
        out = Some(match out {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
    };
    for v in def.vars.iter().filter(|v| names.contains(&v.name.as_str())) {
        match &v.data {
            VarData::F32(values) => {
                for x in values.iter().filter(|x| x.is_finite()) {
                    widen(f64::from(*x), f64::from(*x));
                }
            }
            VarData::Shared(shared) if v.dtype == DType::F32 => {
                if let Some((lo, hi)) = shared.finite_extent() {
                    widen(lo, hi);
                }
            }
            _ => {}
        }
    }
    out
}

fn unsigned_zero(e: Option<(f64, f64)>) -> Option<(f64, f64)> {
    e.map(|(lo, hi)| (lo + 0.0, hi + 0.0))
}

/// Adds the attributes listed in the module documentation.
pub fn enrich(def: &mut DatasetDef) {
    for v in &mut def.vars {
        match v.name.as_str() {
            "time" => {
                let empty = !v
                    .attrs
                    .iter()
                    .any(|(k, c)| k == "comment" && *c != AttrValue::Str(String::new()));
                if empty {
                    let bounds = v.attrs.iter().any(|(k, _)| k == "bounds");
                    let text = if bounds {
                        "Center time of the averaging period; time_bnds holds its start and end."
                    } else {
                        "Time of the snapshot."
                    };
                    set_var_attr(&mut v.attrs, "comment", text.into());
                }
            }
            "k" | "k_u" | "k_l" | "k_p1" => {
                if !v.attrs.iter().any(|(k, _)| k == "units") {
                    v.attrs.push(("units".into(), "1".into()));
                }
                if !v.attrs.iter().any(|(k, _)| k == "positive") {
                    v.attrs.push(("positive".into(), "down".into()));
                }
            }
            _ => {}
        }
    }
    // The cells' bounds: the 0.5° bounds, or the LLC cell corners XG/YG (the grid's
    // own; XC_bnds/YC_bnds extrapolate the corners a tile's XG/YG lacks at the
    // domain's edge), then centres only where a granule has neither.
    let first = |sets: &[&[&str]]| sets.iter().find_map(|names| extent(def, names));
    let lat = first(&[
        &["latitude_bnds"],
        &["YG"],
        &["YC_bnds"],
        &["YC", "latitude"],
    ]);
    let lon = first(&[
        &["longitude_bnds"],
        &["XG"],
        &["XC_bnds"],
        &["XC", "longitude"],
    ]);
    let z = first(&[&["Z_bnds"], &["Zp1"], &["Z"]]);
    // A top face written as −0 (minus a zero depth) is the surface, 0.
    let (lat, lon, z) = (unsigned_zero(lat), unsigned_zero(lon), unsigned_zero(z));
    let g = &mut def.global_attrs;
    if let (Some((lat0, lat1)), Some((lon0, lon1))) = (lat, lon) {
        set_global(g, "geospatial_lat_min", AttrValue::F64(lat0));
        set_global(g, "geospatial_lat_max", AttrValue::F64(lat1));
        set_global(g, "geospatial_lon_min", AttrValue::F64(lon0));
        set_global(g, "geospatial_lon_max", AttrValue::F64(lon1));
        set_global(
            g,
            "geospatial_bounds",
            format!(
                "POLYGON(({lon0} {lat0}, {lon1} {lat0}, {lon1} {lat1}, {lon0} {lat1}, {lon0} {lat0}))"
            )
            .into(),
        );
    }
    match z {
        Some((z0, z1)) => {
            set_global(g, "geospatial_vertical_min", AttrValue::F64(z0));
            set_global(g, "geospatial_vertical_max", AttrValue::F64(z1));
        }
        None => {
            if !g.iter().any(|(k, _)| k == "geospatial_vertical_max") {
                set_global(g, "geospatial_vertical_max", AttrValue::F64(0.0));
            }
        }
    }
    set_global(g, "geospatial_vertical_positive", "up".into());
    if !g.iter().any(|(k, _)| k == "geospatial_vertical_units") {
        set_global(g, "geospatial_vertical_units", "meter".into());
    }
    set_global(g, "geospatial_bounds_vertical_crs", VERTICAL_CRS.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncio::VarDef;

    fn def_with(vars: Vec<VarDef>) -> DatasetDef {
        DatasetDef {
            dims: vec![
                ("Z".into(), 2),
                ("latitude".into(), 2),
                ("longitude".into(), 2),
                ("nv".into(), 2),
            ],
            vars,
            global_attrs: vec![
                ("geospatial_bounds_crs".into(), "EPSG:4326".into()),
                ("geospatial_lat_max".into(), AttrValue::F64(90.0)),
                ("geospatial_vertical_min".into(), AttrValue::F64(-6134.5)),
                ("title".into(), "t".into()),
                ("coordinates".into(), "x".into()),
            ],
        }
    }

    fn centres() -> Vec<VarDef> {
        vec![
            VarDef::new("Z", &["Z"], VarData::F32(vec![-5.0, -15.0])),
            VarDef::new("latitude", &["latitude"], VarData::F32(vec![-10.0, 20.0])),
            VarDef::new("longitude", &["longitude"], VarData::F32(vec![30.0, 40.0])),
        ]
    }

    fn get(def: &DatasetDef, k: &str) -> AttrValue {
        def.global_attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} missing"))
    }

    #[test]
    fn new_globals_keep_the_order_and_extents_come_from_the_cell_bounds() {
        let mut vars = centres();
        vars.push(VarDef::new(
            "Z_bnds",
            &["Z", "nv"],
            VarData::F32(vec![0.0, -10.0, -10.0, -20.0]),
        ));
        vars.push(VarDef::new(
            "latitude_bnds",
            &["latitude", "nv"],
            VarData::F32(vec![-15.0, -5.0, 15.0, 25.0]),
        ));
        vars.push(VarDef::new(
            "longitude_bnds",
            &["longitude", "nv"],
            VarData::F32(vec![25.0, 35.0, 35.0, 45.0]),
        ));
        let mut def = def_with(vars);
        enrich(&mut def);
        let keys: Vec<&str> = def.global_attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "geospatial_bounds",
                "geospatial_bounds_crs",
                "geospatial_bounds_vertical_crs",
                "geospatial_lat_max",
                "geospatial_lat_min",
                "geospatial_lon_max",
                "geospatial_lon_min",
                "geospatial_vertical_max",
                "geospatial_vertical_min",
                "geospatial_vertical_positive",
                "geospatial_vertical_units",
                "title",
                "coordinates"
            ]
        );
        assert_eq!(get(&def, "geospatial_lat_min"), AttrValue::F64(-15.0));
        assert_eq!(get(&def, "geospatial_lat_max"), AttrValue::F64(25.0));
        assert_eq!(get(&def, "geospatial_lon_min"), AttrValue::F64(25.0));
        assert_eq!(get(&def, "geospatial_lon_max"), AttrValue::F64(45.0));
        assert_eq!(get(&def, "geospatial_vertical_min"), AttrValue::F64(-20.0));
        assert_eq!(get(&def, "geospatial_vertical_max"), AttrValue::F64(0.0));
        assert_eq!(
            get(&def, "geospatial_bounds"),
            AttrValue::Str("POLYGON((25 -15, 45 -15, 45 25, 25 25, 25 -15))".into())
        );
    }

    #[test]
    fn without_bounds_the_extents_fall_back_to_the_coordinates() {
        let mut def = def_with(centres());
        enrich(&mut def);
        assert_eq!(get(&def, "geospatial_lat_min"), AttrValue::F64(-10.0));
        assert_eq!(get(&def, "geospatial_lat_max"), AttrValue::F64(20.0));
        assert_eq!(get(&def, "geospatial_vertical_min"), AttrValue::F64(-15.0));
        assert_eq!(get(&def, "geospatial_vertical_max"), AttrValue::F64(-5.0));
    }
}
