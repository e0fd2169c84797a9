//! `edp verify --content` of a 1D granule ([`crate::oned`]): its layout is the
//! grouping's (every field, on `time` alone; `time_bnds` on `nv` for means), no NaN
//! hides outside the fill value, values lie within `valid_min`/`valid_max`, and the time
//! axis runs forward with each mean's time inside its bounds.

use std::path::Path;

use crate::ncio::NcReader;
use crate::oned::OneD;
use crate::time::Frequency;

/// Everything wrong with the 1D granule of `d` at `path`; empty when it passes.
pub fn check(d: &OneD, path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let nc = match NcReader::open(path) {
        Ok(nc) => nc,
        Err(e) => return vec![crate::error::chain(&e)],
    };
    let mean = d.freq != Frequency::Snap;
    // (a) layout.
    let vars = nc.var_names();
    for f in d.fields().unwrap_or_default() {
        if !vars.contains(&f) {
            out.push(format!("variable {f} of the 1D grouping is missing"));
        }
    }
    let want: &[&str] = if mean { &["time", "nv"] } else { &["time"] };
    let dims: Vec<String> = nc.dims().into_iter().map(|(n, _)| n).collect();
    super::verify_content::check_dims(&dims, want, &mut out);
    // (b), (c) the values.
    super::verify_content::check_values(&nc, &vars, &mut out);
    // (d) the time axis.
    match nc.read_as_f64("time") {
        Err(e) => out.push(format!("time: {}", crate::error::chain(&e))),
        Ok(t) => {
            if t.is_empty() || t.windows(2).any(|w| w[1] <= w[0]) {
                out.push(format!(
                    "time ({} value(s)) is empty or does not increase",
                    t.len()
                ));
            }
            if mean {
                match nc.read_as_f64("time_bnds") {
                    Ok(b) if b.len() == 2 * t.len() => {
                        let bad = t
                            .iter()
                            .zip(b.chunks(2))
                            .filter(|(t, b)| !(b[0] <= **t && **t <= b[1] && b[0] < b[1]))
                            .count();
                        if bad > 0 {
                            out.push(format!("{bad} time value(s) outside their time_bnds"));
                        }
                    }
                    Ok(b) => out.push(format!(
                        "time_bnds has {} value(s) for {} times",
                        b.len(),
                        t.len()
                    )),
                    Err(e) => out.push(format!("time_bnds: {}", crate::error::chain(&e))),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncio::{AttrValue, DatasetDef, VarData, VarDef};

    #[test]
    fn a_good_granule_passes_and_a_bad_one_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = dir.path().join("in");
        crate::synth::oned::write_inputs(&inputs, 3, 2).unwrap();
        let d = crate::oned::DATASETS[2];
        let good = crate::granule::oned::write(&d, &inputs, &dir.path().join("out")).unwrap();
        assert_eq!(check(&d, &good), Vec::<String>::new());
        // Times running backwards outside their bounds, a NaN, a field missing, an
        // extra dimension.
        let bad = dir.path().join(d.file_name().unwrap());
        let mut field = VarDef::new(
            "global_mean_sea_level_anomaly",
            &["time"],
            VarData::F32(vec![1.0, f32::NAN]),
        );
        field.attrs = vec![("valid_max".into(), AttrValue::F32(0.5))];
        let def = DatasetDef {
            dims: vec![("time".into(), 2), ("nv".into(), 2), ("x".into(), 1)],
            vars: vec![
                VarDef::new("time", &["time"], VarData::I32(vec![100, 50])),
                VarDef::new(
                    "time_bnds",
                    &["time", "nv"],
                    VarData::I32(vec![0, 10, 0, 10]),
                ),
                field,
            ],
            global_attrs: vec![],
        };
        crate::ncio::write_atomic(def, &bad).unwrap();
        let got = check(&d, &bad).join("\n");
        for want in [
            "variable global_mean_barystatic_sea_level_anomaly of the 1D grouping is missing",
            "unexpected dimension x",
            "global_mean_sea_level_anomaly: 1 NaN value(s)",
            "global_mean_sea_level_anomaly: 1 value(s) outside valid_min - .. valid_max 0.5",
            "does not increase",
            "2 time value(s) outside their time_bnds",
        ] {
            assert!(got.contains(want), "{want}: {got}");
        }
    }
}
