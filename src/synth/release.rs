//! `edp synth --variables all`: every model field the metadata's groupings read, so a
//! whole release can be made end to end on a small grid.
//!
//! Each input field of every native and lat-lon grouping with time-varying output (its
//! vector components for a vector field) is written with the grid point and the levels
//! the metadata's diagnostics table gives it (C/U/V/G points; 2D or 3D at level centres
//! or interfaces), as the granule builders expect. Fields the synthetic table knows
//! ([`super::VARIABLES`]) keep their closed-form answers; the others sample a smooth
//! field of their own (seeded by the name).

use std::collections::BTreeSet;

use serde_json::Value;

use super::layout::{Source, Vertical};
use crate::llc::PointType;
use crate::metadata::{Grouping, MetadataSet, Product};
use crate::time::Frequency;

/// The spelling that asks for every field of the groupings.
pub const ALL: &str = "all";

/// One field to synthesise.
#[derive(Debug, Clone)]
pub struct Var {
    pub name: String,
    pub point: PointType,
    pub vertical: Vertical,
    pub source: Source,
}

impl Var {
    pub fn from_spec(s: &super::VarSpec) -> Var {
        Var {
            name: s.name.to_string(),
            point: s.point,
            vertical: s.vertical,
            source: s.source,
        }
    }
}

/// The model inputs of an output field: its vector components (x then y) or itself.
fn inputs_of(g: &Grouping, field: &str) -> Vec<String> {
    match g.field_components.as_ref().and_then(|c| c.get(field)) {
        Some(Value::Object(c)) => ["x", "y"]
            .iter()
            .filter_map(|k| c.get(*k).and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => vec![field.to_string()],
    }
}

/// Every input field of `m`'s time-varying native and lat-lon groupings, sorted by name.
pub fn all_fields(m: &MetadataSet) -> Vec<Var> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for product in [Product::Native, Product::Latlon] {
        for g in m.groupings(product) {
            if crate::metadata::is_geometry(g) || g.frequencies.iter().all(|f| *f == Frequency::Ti)
            {
                continue;
            }
            for field in &g.fields {
                for name in inputs_of(g, field) {
                    if !seen.insert(name.clone()) {
                        continue;
                    }
                    out.push(var_of(m, g, &name));
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The field `name` as the metadata describes it (the diagnostics table first, then the
/// grouping's dimension).
fn var_of(m: &MetadataSet, g: &Grouping, name: &str) -> Var {
    if let Some(spec) = super::layout::variable(name) {
        return Var::from_spec(spec);
    }
    let diag = m.diagnostics.get(name);
    let point = diag.map_or(PointType::C, |d| d.point);
    let vertical = match diag.map(|d| d.vertical) {
        Some(Some("k_l")) | Some(Some("k_p1")) => Vertical::Top,
        Some(Some(_)) => Vertical::Centre,
        Some(None) => Vertical::Surface,
        None if g.is_3d() => Vertical::Centre,
        None => Vertical::Surface,
    };
    Var {
        name: name.to_string(),
        point,
        vertical,
        source: Source::Seeded(seed(name)),
    }
}

/// A stable number from a name (FNV-1a), so each field differs and every run agrees.
fn seed(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The smooth field of a seeded variable at (lon, lat, z, t).
pub fn seeded(seed: u32, lon: f64, lat: f64, z: f64, t: f64) -> f64 {
    let s = f64::from(seed % 1000) / 1000.0;
    let amplitude = 1.0 + 9.0 * s;
    let phase = std::f64::consts::TAU * s;
    amplitude
        * ((lon.to_radians() + phase + t / 30.0).sin() * lat.to_radians().cos()
            + 0.5 * (2.0 * lat.to_radians() + phase).cos())
        * (z / 1000.0).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grouping_input_once_with_its_point_and_levels() {
        let m = MetadataSet::embedded().unwrap();
        let all = all_fields(&m);
        let names: BTreeSet<&str> = all.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "each field once");
        for g in m.groupings(Product::Native) {
            if crate::metadata::is_geometry(g) || g.frequencies.iter().all(|f| *f == Frequency::Ti)
            {
                continue;
            }
            for f in &g.fields {
                for i in inputs_of(g, f) {
                    assert!(names.contains(i.as_str()), "{} needs {i}", g.filename);
                }
            }
        }
        let get = |n: &str| all.iter().find(|v| v.name == n).unwrap();
        // As the diagnostics table says (independently of the synthetic table).
        for v in &all {
            if let Some(d) = m.diagnostics.get(&v.name) {
                assert_eq!(v.point, d.point, "{}", v.name);
                assert_eq!(
                    v.vertical == Vertical::Surface,
                    d.vertical.is_none(),
                    "{}",
                    v.name
                );
            }
        }
        assert_eq!(get("THETA").vertical, Vertical::Centre);
        assert_eq!(get("SSH").vertical, Vertical::Surface);
    }
}
